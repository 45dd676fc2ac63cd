/**
 * Client-level differential privacy for federated training, central mode: DP-FedAvg (McMahan, Ramage, Talwar,
 * Zhang, "Learning Differentially Private Recurrent Language Models", ICLR 2018, Alg. 1) as a Strategy that wraps
 * any Strategy — Flower's `DifferentialPrivacyServerSide{Fixed,Adaptive}Clipping` shape.
 *
 * Per round, over the tensors the inner strategy aggregates (FedBN's local BN tensors are never touched):
 *   Delta_k = w_k - w_global,  Delta_k <- Delta_k * min(1, C / ||Delta_k||_2)          (ClipFn, per site)
 *   mean    = (sum_k Delta_k + N(0, (z_Delta C)^2 I)) / m                             (uniform site weights)
 * and the inner strategy gets ONE virtual result w_global + mean (FedAvg returns it; FedAdam/FedYogi treat it as
 * their pseudo-gradient — post-processing, so the guarantee holds; Flower instead noises the inner strategy's
 * output, which is only right for FedAvg). Uniform weights make one site's sensitivity C on the sum; example
 * weighting would let a large site move the mean by more than C/m.
 * Adaptive clipping (Andrew et al., NeurIPS 2021) moves C towards a target quantile of the update norms after each
 * round, using a noised count; z_Delta is raised so that the two releases compose to the requested z (Thm 1).
 * Accounting: one sampled Gaussian step per round at q = sites per round / enrolled sites, multiplier z
 * (protocol/privacy ledger). The coordinator holds the un-noised sum for a moment: this mode trusts it. With secure
 * aggregation the sites add the noise themselves (distributed mode, protocol/privacy/distributed-noise.ts).
 */
import { sizeOfShape, type WeightSet } from '../../protocol/index.ts';
import { tensorRole } from '../../protocol/contracts/index.ts';
import {
  ADAPTIVE_CLIPPING_DEFAULTS,
  PrivacyError,
  PrivacyLedger,
  adaptiveNoiseSplit,
  addGaussianNoise,
  clipL2InPlace,
  nextClipNorm,
  sampledGaussianEpsilon,
  DP_CONFIG_KEYS,
  checkNoiseHeadroom,
  ddgEvent,
  planDistributedDp,
  type DistributedDpParams,
  type LedgerReport,
  type NoiseSource,
  type PrivacyEvent,
} from '../../protocol/privacy/index.ts';
import { weightedMetricMeans } from './aggregate.ts';
import type { AggregatedFit, EvaluateInstruction, EvaluateResult, FitInstruction, FitResult, RoundFailure, SiteInfo, Strategy } from './strategy.ts';

export type DpClipping =
  | { readonly mode: 'fixed'; readonly clip: number }
  | {
      readonly mode: 'adaptive';
      readonly initialClip?: number;
      readonly targetQuantile?: number;
      readonly clipLearningRate?: number;
      readonly countStddev?: number;
    };

export interface DpFedAvgOptions {
  /** z: noise std / clipping norm on the sum of the round's clipped updates (for adaptive: of update + count together). */
  readonly noiseMultiplier: number;
  readonly clipping: DpClipping;
  /** Sites expected per round (m) and enrolled sites (N): the sampling rate is m / N. */
  readonly sitesPerRound: number;
  readonly totalSites: number;
  /** Planned rounds: the run refuses to start when they would exceed the budget. */
  readonly rounds: number;
  readonly delta: number;
  /** Refuse to start (and to run a round) beyond this epsilon at `delta`. */
  readonly maxEpsilon?: number;
  readonly noise: NoiseSource;
  /**
   * Distributed mode (secure aggregation on): the sites clip and add discrete Gaussian shares in the quantized
   * domain; this wrapper only announces the parameters and accounts. Needs the secure sum's quantization, the
   * public example bound M it weights by, and the length d of the aggregated vector.
   */
  readonly distributed?: {
    readonly quant: { readonly clip: number; readonly scaleBits: number };
    readonly maxExamples: number;
    readonly dim: number;
    /** Calibrate the shares for this many survivors (default: all sites of the round). */
    readonly minSurvivors?: number;
  };
}

/** What the coordinator status, the run folder and summary.json show. */
export interface PrivacyStatus extends LedgerReport {
  readonly mode: 'central' | 'distributed';
  readonly noiseMultiplier: number;
  readonly samplingRate: number;
  /** Current clipping norm (moves between rounds under adaptive clipping). */
  readonly clip: number;
  readonly clipping: 'fixed' | 'adaptive';
  readonly roundsAccounted: number;
  readonly plannedRounds: number;
  /** epsilon after all planned rounds. */
  readonly plannedEpsilon: number;
  readonly maxEpsilon: number | null;
  /** Central mode: the coordinator's noise source. Distributed mode: the sites' (always 'crypto'). */
  readonly noiseSource: 'crypto' | 'seeded';
  /** Distributed mode: each site's discrete Gaussian sigma and the integer-domain sensitivity (quantized units). */
  readonly distributed: (DistributedDpParams & { readonly dim: number; readonly minSurvivors: number }) | null;
}

/** A Strategy that can say what it has spent (the coordinator puts this in its status). */
export interface PrivacyAccounting {
  privacyStatus(): PrivacyStatus;
}

export function hasPrivacyAccounting(s: Strategy): s is Strategy & PrivacyAccounting {
  return typeof (s as Partial<PrivacyAccounting>).privacyStatus === 'function';
}

const LABEL = 'dp-fedavg';

/**
 * Noise can push an averaged batch-norm running variance below zero, which no site can use. Flooring it is
 * post-processing of a DP release, so the guarantee is unchanged (Dwork & Roth 2014, Prop. 2.1).
 */
export const BN_VARIANCE_FLOOR = 1e-3;

function floorVariances(weights: WeightSet): WeightSet {
  return weights.map((t) => {
    if (tensorRole(t.name) !== 'bn-stat' || !t.name.endsWith('.var')) return t;
    return { ...t, data: t.data.map((v) => (v > BN_VARIANCE_FLOOR ? v : BN_VARIANCE_FLOOR)) };
  });
}

/** Site noise for distributed mode (Kairouz et al. 2021), refused when adaptive or when the sum could wrap. */
function planDistributed(opts: DpFedAvgOptions, clip: number): DistributedDpParams & { dim: number; minSurvivors: number } {
  const d = opts.distributed!;
  if (opts.clipping.mode !== 'fixed') throw new PrivacyError('bad-argument', 'distributed DP (secure aggregation) supports fixed clipping only: the adaptive clip needs its own noised count');
  const minSurvivors = d.minSurvivors ?? opts.sitesPerRound;
  // The packed vector carries w / M: the clip in those units is C / M (dp-fit-contribution.ts).
  const params = planDistributedDp({ clip: clip / d.maxExamples, scaleBits: d.quant.scaleBits, dim: d.dim, noiseMultiplier: opts.noiseMultiplier, sites: opts.sitesPerRound, minSurvivors });
  checkNoiseHeadroom(Math.round(d.quant.clip * 2 ** d.quant.scaleBits), opts.sitesPerRound, params.siteSigma);
  return { ...params, dim: d.dim, minSurvivors };
}

export class DpFedAvg implements Strategy, PrivacyAccounting {
  readonly name: string;
  private readonly ledger = new PrivacyLedger();
  private clip: number;
  private readonly updateMultiplier: number;
  private readonly countStddev: number;
  private readonly samplingRate: number;
  private readonly plannedEpsilon: number;
  private readonly ddg: (DistributedDpParams & { dim: number; minSurvivors: number }) | null = null;

  constructor(
    private readonly inner: Strategy,
    private readonly opts: DpFedAvgOptions,
  ) {
    this.name = `dp-${inner.name}`;
    const { noiseMultiplier: z, sitesPerRound: m, totalSites: n } = opts;
    if (!Number.isInteger(m) || !Number.isInteger(n) || m < 1 || n < m) {
      throw new PrivacyError('bad-argument', `need 1 <= sites per round (${m}) <= enrolled sites (${n})`);
    }
    if (!(z > 0) || !Number.isFinite(z)) throw new PrivacyError('bad-argument', `differential privacy needs a noise multiplier > 0, got ${z}`);
    if (!Number.isInteger(opts.rounds) || opts.rounds < 0) throw new PrivacyError('bad-argument', `planned rounds must be an integer >= 0, got ${opts.rounds}`);
    this.samplingRate = m / n;
    if (opts.clipping.mode === 'fixed') {
      if (!(opts.clipping.clip > 0) || !Number.isFinite(opts.clipping.clip)) throw new PrivacyError('bad-argument', `clipping norm must be > 0, got ${opts.clipping.clip}`);
      this.clip = opts.clipping.clip;
      this.updateMultiplier = z;
      this.countStddev = 0;
    } else {
      this.clip = opts.clipping.initialClip ?? ADAPTIVE_CLIPPING_DEFAULTS.initialClip;
      const split = adaptiveNoiseSplit(z, m, opts.clipping.countStddev);
      this.updateMultiplier = split.updateMultiplier;
      this.countStddev = split.countStddev;
    }
    if (opts.distributed) {
      this.ddg = planDistributed(opts, this.clip);
      const planned = new PrivacyLedger();
      planned.record({ ...ddgEvent(LABEL, this.ddg, m, this.ddg.dim), steps: opts.rounds });
      this.plannedEpsilon = planned.spent(opts.delta).epsilon;
    } else {
      this.plannedEpsilon = sampledGaussianEpsilon({ samplingRate: this.samplingRate, noiseMultiplier: z, steps: opts.rounds, delta: opts.delta }).epsilon;
    }
    if (opts.maxEpsilon !== undefined && this.plannedEpsilon > opts.maxEpsilon) {
      throw new PrivacyError(
        'budget-exceeded',
        `${opts.rounds} rounds of DP-FedAvg at noise multiplier ${z} and sampling rate ${this.samplingRate} spend epsilon ${this.plannedEpsilon.toFixed(3)} ` +
          `(delta ${opts.delta}), over the budget of ${opts.maxEpsilon}: raise the noise multiplier, lower the rounds or raise the budget`,
      );
    }
  }

  /** Round 0 and the starting model are the inner strategy's: evaluating the public initial model spends nothing. */
  get evaluatesInitialModel(): boolean {
    return this.inner.evaluatesInitialModel === true;
  }

  initialize(initial: WeightSet): WeightSet | null {
    return this.inner.initialize?.(initial) ?? null;
  }

  configureFit(round: number, sites: readonly SiteInfo[], global: WeightSet): FitInstruction[] {
    const ins = this.inner.configureFit(round, sites, global);
    if (!this.ddg) return ins;
    const dp = { [DP_CONFIG_KEYS.clip]: this.clip, [DP_CONFIG_KEYS.siteSigma]: this.ddg.siteSigma, [DP_CONFIG_KEYS.delta]: this.opts.delta };
    return ins.map((i) => ({ ...i, config: { ...i.config, ...dp } }));
  }

  aggregatesTensor(name: string): boolean {
    return this.inner.aggregatesTensor?.(name) ?? true;
  }

  /** The clipped, noised mean update as one virtual result for the inner strategy (see the file comment). */
  aggregateFit(round: number, results: readonly FitResult[], failures: readonly RoundFailure[], global: WeightSet): AggregatedFit | null {
    if (this.ddg) return this.aggregateDistributed(round, results, failures, global, this.ddg);
    if (results.some((r) => r.aggregateOf !== undefined)) {
      throw new PrivacyError('bad-argument', 'central DP-FedAvg cannot clip a secure aggregate: with secure aggregation the sites add the noise (distributed mode)');
    }
    if (results.length === 0) return this.inner.aggregateFit(round, results, failures, global);
    if (this.opts.maxEpsilon !== undefined) this.refuseOverBudget();
    const tensors = global.filter((t) => this.aggregatesTensor(t.name));
    const sum = tensors.map((t) => new Float64Array(sizeOfShape(t.shape)));
    let unclipped = 0;
    for (const r of results) {
      const byName = new Map(r.weights.map((t) => [t.name, t.data]));
      const delta = tensors.map((t) => {
        const w = byName.get(t.name);
        if (!w || w.length !== t.data.length) throw new PrivacyError('bad-argument', `site ${r.siteId}: update lacks tensor ${t.name} or has the wrong size`);
        const d = new Float64Array(w.length);
        for (let i = 0; i < w.length; i++) d[i] = w[i] - t.data[i];
        return d;
      });
      if (clipL2InPlace(delta, this.clip).unclipped) unclipped++;
      delta.forEach((d, k) => {
        for (let i = 0; i < d.length; i++) sum[k][i] += d[i];
      });
    }
    const std = this.updateMultiplier * this.clip;
    const m = results.length;
    const noised = new Map<string, Float32Array>();
    tensors.forEach((t, k) => {
      addGaussianNoise(sum[k], std, this.opts.noise);
      const out = new Float32Array(t.data.length);
      for (let i = 0; i < out.length; i++) out[i] = t.data[i] + sum[k][i] / m;
      noised.set(t.name, out);
    });
    this.ledger.record({ mechanism: 'sampled-gaussian', label: LABEL, samplingRate: this.samplingRate, noiseMultiplier: this.opts.noiseMultiplier, steps: 1 });
    const clipUsed = this.clip;
    if (this.opts.clipping.mode === 'adaptive') {
      const c = this.opts.clipping;
      this.clip = nextClipNorm(this.clip, unclipped, m, {
        targetQuantile: c.targetQuantile ?? ADAPTIVE_CLIPPING_DEFAULTS.targetQuantile,
        clipLearningRate: c.clipLearningRate ?? ADAPTIVE_CLIPPING_DEFAULTS.clipLearningRate,
        countStddev: this.countStddev,
      }, this.opts.noise);
    }
    const virtual: FitResult = {
      siteId: 'dp-aggregate',
      weights: global.map((t) => ({ name: t.name, shape: [...t.shape], data: noised.get(t.name) ?? new Float32Array(t.data) })),
      numExamples: results.reduce((s, r) => s + r.numExamples, 0),
      metrics: weightedMetricMeans(results),
      aggregateOf: results.map((r) => r.siteId),
    };
    const agg = this.inner.aggregateFit(round, [virtual], failures, global);
    if (agg === null) return null;
    return { weights: floorVariances(agg.weights), metrics: { ...agg.metrics, 'dp.clip': clipUsed, 'dp.noiseStd': std / m, 'dp.epsilon': this.spent().epsilon } };
  }

  /** The secure sum already carries the survivors' clipped updates and noise shares: account, then pass it on. */
  private aggregateDistributed(round: number, results: readonly FitResult[], failures: readonly RoundFailure[], global: WeightSet, ddg: DistributedDpParams & { dim: number }): AggregatedFit | null {
    if (results.some((r) => r.aggregateOf === undefined)) {
      throw new PrivacyError('bad-argument', 'distributed DP-FedAvg needs secure aggregation: a site update arrived in the clear');
    }
    if (results.length === 0) return this.inner.aggregateFit(round, results, failures, global);
    if (this.opts.maxEpsilon !== undefined) this.refuseOverBudget();
    const survivors = results.reduce((s, r) => s + r.aggregateOf!.length, 0);
    this.ledger.record(ddgEvent(LABEL, ddg, survivors, ddg.dim));
    const agg = this.inner.aggregateFit(round, results, failures, global);
    if (agg === null) return null;
    const floored = floorVariances(agg.weights);
    const std = (Math.sqrt(survivors) * ddg.siteSigma * 2 ** -this.opts.distributed!.quant.scaleBits * this.opts.distributed!.maxExamples) / survivors;
    return { weights: floored, metrics: { ...agg.metrics, 'dp.clip': this.clip, 'dp.noiseStd': std, 'dp.epsilon': this.spent().epsilon } };
  }

  private spent() {
    return this.ledger.spent(this.opts.delta);
  }

  /** A round beyond the budget is refused before any noisy release (the planned-rounds check already ran). */
  private refuseOverBudget(): void {
    const next = this.ledger.clone();
    next.record(this.ddg ? ddgEvent(LABEL, this.ddg, this.opts.sitesPerRound, this.ddg.dim) : { mechanism: 'sampled-gaussian', label: LABEL, samplingRate: this.samplingRate, noiseMultiplier: this.opts.noiseMultiplier, steps: 1 });
    const eps = next.spent(this.opts.delta).epsilon;
    if (eps > this.opts.maxEpsilon!) throw new PrivacyError('budget-exceeded', `one more round would spend epsilon ${eps.toFixed(3)} > budget ${this.opts.maxEpsilon}`);
  }

  configureEvaluate(round: number, sites: readonly SiteInfo[], global: WeightSet): EvaluateInstruction[] {
    return this.inner.configureEvaluate(round, sites, global);
  }

  aggregateEvaluate(round: number, results: readonly EvaluateResult[], failures: readonly RoundFailure[]): Record<string, number> | null {
    return this.inner.aggregateEvaluate(round, results, failures);
  }

  /** Inner state plus the DP state (rounds accounted, current clip) so a resumed run keeps counting. */
  exportState(): WeightSet {
    const steps = this.ledger.events.reduce((s, e) => s + e.steps, 0);
    return [...(this.inner.exportState?.() ?? []), { name: '__dp.rounds', shape: [1], data: Float32Array.of(steps) }, { name: '__dp.clip', shape: [1], data: Float32Array.of(this.clip) }];
  }

  importState(state: WeightSet): void {
    const own = new Map(state.filter((t) => t.name.startsWith('__dp.')).map((t) => [t.name, t.data[0]]));
    this.inner.importState?.(state.filter((t) => !t.name.startsWith('__dp.')));
    const rounds = own.get('__dp.rounds') ?? 0;
    if (rounds > 0) {
      // Survivor counts of past rounds are not checkpointed: resumed rounds are accounted as full rounds.
      const event = this.ddg ? ddgEvent(LABEL, this.ddg, this.opts.sitesPerRound, this.ddg.dim) : { mechanism: 'sampled-gaussian' as const, label: LABEL, samplingRate: this.samplingRate, noiseMultiplier: this.opts.noiseMultiplier, steps: 1 };
      this.ledger.record({ ...event, steps: Math.round(rounds) });
    }
    const clip = own.get('__dp.clip');
    if (clip !== undefined && clip > 0) this.clip = clip;
  }

  /** The ledger events of all planned rounds (every site surviving), for budget checks across mechanisms. */
  plannedEvents(): PrivacyEvent[] {
    if (this.opts.rounds === 0) return [];
    const one = this.ddg ? ddgEvent(LABEL, this.ddg, this.opts.sitesPerRound, this.ddg.dim) : { mechanism: 'sampled-gaussian' as const, label: LABEL, samplingRate: this.samplingRate, noiseMultiplier: this.opts.noiseMultiplier, steps: 1 };
    return [{ ...one, steps: this.opts.rounds }];
  }

  privacyStatus(): PrivacyStatus {
    const report = this.ledger.report(this.opts.delta);
    return {
      ...report,
      mode: this.ddg ? 'distributed' : 'central',
      noiseMultiplier: this.opts.noiseMultiplier,
      samplingRate: this.samplingRate,
      clip: this.clip,
      clipping: this.opts.clipping.mode,
      roundsAccounted: this.ledger.events.reduce((s, e) => s + e.steps, 0),
      plannedRounds: this.opts.rounds,
      plannedEpsilon: this.plannedEpsilon,
      maxEpsilon: this.opts.maxEpsilon ?? null,
      noiseSource: this.ddg ? 'crypto' : this.opts.noise.mode,
      distributed: this.ddg,
    };
  }
}
