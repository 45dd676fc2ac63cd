/**
 * Federated source-free adaptation across several new hospitals (`kind: sfda-multi-target`,
 * `fedsfda simulate --config simulations/scenarios/sfda-multi-target.json`). K unlabelled target sites, each on its
 * own scanner, adapt the same federated source model together (site-agent/adapt/joint-target-site.ts). Each site first
 * fits its own input curve on the source model (once per site and seed; both modes start from it, with target BN
 * statistics). Every round:
 *   1. when the local method reads pooled statistics (mean teacher: prototype sums and kept class counts, DPL eq. 3;
 *      ratio-entropy with `classPrior: 'pooled'`: predicted class mass), each site contributes its vector to a SecAgg+
 *      round (protocol/secagg, the coordinator's own server workflow and the sites' own sessions, with signed keys,
 *      pairwise and self masks and Shamir-shared seeds);
 *   2. each site trains one local epoch (mean teacher with denoised pseudo-labels, or Bateson's class-ratio-prior
 *      entropy), using the pooled statistics (`method: 'adabn'` trains nothing: the site keeps its own target BN
 *      statistics, and with `share.bnMoments` that is all the sites pool; sfda-multi-target-mricron.json);
 *   3. the models' shared weights are summed by a second SecAgg+ round (fit contributions weighted by target slices,
 *      exactly the coordinator's secure fit: protocol/secagg/fit-contribution.ts) and turned into the next global
 *      weights by the coordinator's FedBN strategy (BN, and optionally `share.localPrefixes`, stay at the site).
 * With `adapt.share.inputCurve` / `bnMoments` (sites with the same kind of scanner; multi-target-pooled.ts), the
 * federated mode first fits the input curve on all sites' slices (FedSGD through secure sums, the curve in each site's
 * own quantile space) and, after the rounds, pools the target BN moments (AdaBN over the union of the slices); each
 * site takes the pooled curve, and then the pooled statistics (with `share.bnOwnWeight` α: the moments of the mixture
 * α · own + (1 - α) · pooled), only when its own label-free check accepts it (its
 * input-adapter objective under the pooled curve at most (1 + tolerance) times under its own curve; its mean
 * prediction entropy under the pooled statistics at most (1 + entropyTolerance) times under its own), so that a
 * different scanner keeps its own curve and statistics. With `share.keepAlone`, a site that took the pooled curve but
 * refused the pooled statistics also adapts alone (local work only) and keeps that result: on the tuning seeds a pooled
 * curve without the pooled statistics brought nothing but noise (scanner-d-like hospital-d2, seed 102: -0.020).
 * The coordinator learns the sums only. The same sites adapting alone (same epochs, their own statistics, no weight
 * exchange) are the comparison, per site, with the common starting point (curve + AdaBN) reported beside them.
 * What is in-process here: the transport (the messages pass through `runSecAggRound`'s in-memory driver instead of
 * sockets); everything a message carries is the product's.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import {
  adaptAdaBN,
  applyCurve,
  computeSourceStats,
  evaluateSegmentation,
  fitJointAdapter,
  JointTargetSite,
  poolSourceStats,
  toUnlabeled,
  type IntensityCurve,
  type JointSiteOptions,
  type SourceStats,
} from '../../site-agent/adapt/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { createUNet, type UNet } from '../../site-agent/model/index.ts';
import type { WeightSet } from '../../protocol/index.ts';
import { benchmarkSiteData } from './benchmark-site.ts';
import { MultiTargetError, multiTargetSchema, parseMultiTargetConfig, type MultiTargetConfig } from './multi-target-config.ts';
export { MultiTargetError, multiTargetSchema, parseMultiTargetConfig, type MultiTargetConfig } from './multi-target-config.ts';
import { trainFederatedSource } from './federated-source.ts';
import { securePooledBn, securePooledCurve } from './multi-target-pooled.ts';
import { secureFedBn, secureStatistics, type SecureRoundConfig, type SecureRoundHooks } from './multi-target-round.ts';


export interface SiteOutcome {
  readonly id: string;
  readonly alone: number[];
  readonly federated: number[];
  readonly sourceOnly: number[];
  /** The source model behind the site's input curve with target BN statistics (AdaBN): where both modes start. */
  readonly curveAdaBn: number[];
}

/** Wall time per phase, summed over seeds (ms). */
export interface MultiTargetPhases {
  /** Target/test data, federated source training and source statistics. */
  source: number;
  /** The sites' input adapters (fitted once per site and seed; both modes start from the same curve). */
  adapter: number;
  alone: number;
  federated: number;
}

export interface MultiTargetResult {
  readonly name: string;
  readonly seeds: number[];
  readonly sites: SiteOutcome[];
  readonly secureRounds: number;
  readonly wallMs: number;
  readonly phases: MultiTargetPhases;
}

export type AdaptMode = 'alone' | 'federated';

export interface RoundReport {
  readonly seed: number;
  readonly mode: AdaptMode;
  readonly round: number;
  readonly sites: readonly JointTargetSite[];
  /** Test Dice of every site's current teacher (after AdaBN on its target): for tuning runs only (costs a pass). */
  readonly score: () => number[];
}

export interface MultiTargetHooks extends SecureRoundHooks {
  readonly onProgress?: (m: string) => void;
  /** After every adaptation round of either mode. */
  readonly onRound?: (r: RoundReport) => void;
  /** Saves the federated source model per seed (tuning runs); `key` names the scenario's source side and seed. */
  readonly sourceCache?: { load(key: string): Promise<WeightSet | null>; store(key: string, w: WeightSet): Promise<void> };
}

/** What both modes start from, for one seed. */
export interface PreparedSeed {
  readonly seed: number;
  readonly sourceWeights: WeightSet;
  readonly stats: SourceStats;
  readonly targets: SliceDataset[];
  readonly tests: SliceDataset[];
  readonly curves: (IntensityCurve | null)[];
  readonly sourceOnly: number[];
  /** Test Dice of the starting point of both modes (curve + AdaBN, no training). */
  readonly curveAdaBn: number[];
}

const modelConfig = (cfg: MultiTargetConfig): Parameters<typeof createUNet>[0] => ({ inChannels: 1, numClasses: cfg.data.numClasses, baseChannels: cfg.model.baseChannels, depth: cfg.model.depth });

const siteOptions = (cfg: MultiTargetConfig, seed: number, i: number, mode: AdaptMode): JointSiteOptions => ({
  ...cfg.adapt.options,
  batchSize: cfg.adapt.batchSize,
  seed: seed * 31 + i,
  share: mode === 'federated' ? 'pooled' : 'local',
});

/** Test Dice of `u` at target site i (its curve applied to the test images). */
function scoreSite(p: PreparedSeed, u: UNet, i: number, curve: IntensityCurve | null): number {
  const test = p.tests[i];
  const images = toUnlabeled(test);
  return evaluateSegmentation(u, curve ? applyCurve(curve, images) : images, test.labels, test.sliceThickness).summary.mean.dice.mean;
}

/** Source model, statistics, target data and every site's input curve for one seed. */
export async function prepareSeed(cfg: MultiTargetConfig, seed: number, hooks: MultiTargetHooks, phases: MultiTargetPhases): Promise<PreparedSeed> {
  const d = cfg.data;
  let t0 = performance.now();
  const sources = await Promise.all(d.sourceSites.map((s, i) => benchmarkSiteData(d, seed * 100 + i, s.shift, s.numCases, `src${i}`)));
  const source = createUNet(modelConfig(cfg), seed);
  try {
    const key = `multi-${seed}-${JSON.stringify([d.anatomy, d.size, d.numClasses, d.slicesPerCase, d.sourceSites, cfg.model, cfg.federated])}`;
    const cached = await hooks.sourceCache?.load(key);
    if (cached) source.setWeights(cached);
    else {
      await trainFederatedSource(source, sources, { ...cfg.federated, seed });
      await hooks.sourceCache?.store(key, source.getWeights());
    }
    const sourceWeights = source.getWeights();
    const stats = poolSourceStats(sources.map((s) => computeSourceStats(source, s)));
    const targets = await Promise.all(d.targets.map((t, i) => benchmarkSiteData(d, seed * 100 + 50 + 10 * i, t.shift, t.adaptCases, `${t.id}-adapt`)));
    const tests = await Promise.all(d.targets.map((t, i) => benchmarkSiteData(d, seed * 100 + 51 + 10 * i, t.shift, t.testCases, `${t.id}-test`)));
    const partial = { seed, sourceWeights, stats, targets, tests, curves: [], sourceOnly: [], curveAdaBn: [] };
    const sourceOnly = d.targets.map((_, i) => scoreSite(partial, source, i, null));
    phases.source += performance.now() - t0;
    t0 = performance.now();
    // The input adapter is fitted on the source model before any adaptation, so one fit per site serves both modes
    // (same model, same images, same seed: the curve each mode would fit is this one).
    const curves = d.targets.map((_, i) => {
      const o = siteOptions(cfg, seed, i, 'alone');
      if (!o.inputAdapter) return null;
      source.setWeights(sourceWeights);
      return fitJointAdapter(source, toUnlabeled(targets[i]), stats, o).curve;
    });
    phases.adapter += performance.now() - t0;
    const curveAdaBn = d.targets.map((_, i) => {
      source.setWeights(sourceWeights);
      const seen = curves[i] ? applyCurve(curves[i], toUnlabeled(targets[i])) : toUnlabeled(targets[i]);
      adaptAdaBN(source, seen, { batchSize: cfg.adapt.batchSize });
      return scoreSite(partial, source, i, curves[i]);
    });
    return { ...partial, curves, sourceOnly, curveAdaBn };
  } finally {
    source.dispose();
  }
}

/** Test Dice of a site's current teacher: a copy with target BN statistics (AdaBN), as `finish()` would leave it. */
function scoreTeacher(p: PreparedSeed, j: JointTargetSite, i: number): number {
  const u = createUNet(j.unet.config, 0);
  try {
    u.setWeights(j.current.getWeights());
    adaptAdaBN(u, j.seen, { batchSize: j.opts.batchSize });
    return scoreSite(p, u, i, j.curve);
  } finally {
    u.dispose();
  }
}

function secureConfig(cfg: MultiTargetConfig): SecureRoundConfig {
  const sa = cfg.secureAggregation;
  return {
    ids: cfg.data.targets.map((t) => t.id),
    numClasses: cfg.data.numClasses,
    dim: cfg.model.baseChannels,
    maxExamples: sa.maxExamples,
    maxPixels: sa.maxPixels,
    clip: sa.clip,
    ...(sa.threshold !== undefined ? { threshold: sa.threshold } : {}),
    identities: cfg.data.targets.map(() => nacl.sign.keyPair()),
  };
}

/**
 * Adapts every target site alone or jointly; returns the adapted models' test Dice per site. `onJoint` sees every
 * site's choice of the pooled curve (with `share.inputCurve`) and the objectives it chose by. `aloneDice`: this seed's
 * alone results when the caller already has them (a federated run with `share.keepAlone` reuses them instead of adapting
 * every site alone again; the alone mode is deterministic per seed).
 */
export async function adaptSites(
  cfg: MultiTargetConfig,
  p: PreparedSeed,
  mode: AdaptMode,
  hooks: MultiTargetHooks,
  onJoint?: (joined: boolean[], own: number[], pooled: number[]) => void,
  aloneDice?: readonly number[],
): Promise<number[]> {
  const d = cfg.data;
  const log = hooks.onProgress ?? ((): void => undefined);
  const nets = d.targets.map(() => createUNet(modelConfig(cfg), p.seed));
  try {
    for (const n of nets) n.setWeights(p.sourceWeights);
    const share = cfg.adapt.share;
    const secure = secureConfig(cfg);
    let curves = p.curves;
    let joined = d.targets.map(() => true);
    if (mode === 'federated' && share.inputCurve) {
      const adapter = cfg.adapt.options.inputAdapter;
      if (!adapter) throw new MultiTargetError('adapt.share.inputCurve needs adapt.options.inputAdapter');
      const r = await securePooledCurve(secure, nets[0], p.targets.map((t) => toUnlabeled(t)), p.stats, adapter, p.curves, { batchSize: cfg.adapt.batchSize, seed: p.seed, tolerance: share.tolerance, refine: share.refine }, hooks);
      curves = r.curves;
      joined = r.joined;
      log(`seed ${p.seed} federated: pooled curve (${r.secureRounds} secure sums) taken by ${r.joined.map((j, i) => `${d.targets[i].id} ${j ? 'yes' : 'no'} (${r.own[i].toFixed(4)} own / ${r.pooled[i].toFixed(4)} pooled)`).join(', ')}`);
      onJoint?.(r.joined, r.own, r.pooled);
    }
    const joint = nets.map((n, i) => new JointTargetSite(n, toUnlabeled(p.targets[i]), p.stats, siteOptions(cfg, p.seed, i, mode), curves[i]));
    const totalSteps = cfg.adapt.rounds * Math.ceil(p.targets[0].n / cfg.adapt.batchSize);
    const sa = cfg.secureAggregation;
    let global = p.sourceWeights;
    for (let r = 1; r <= cfg.adapt.rounds; r++) {
      if (mode === 'federated') {
        // A statistics round only when a site uses its result: not for ratio-entropy with the source prior, whose
        // sites share nothing but weights (a sum nobody reads would only tell the coordinator more).
        const pooled = sharesStatistics(cfg) ? await secureStatistics(secure, joint, r, hooks) : null;
        if (pooled === null) for (const j of joint) j.statistics(1 / sa.maxPixels);
        for (const j of joint) j.train(pooled && { protos: share.prototypes ? pooled.protos : null, kept: share.classRatio ? pooled.kept : null, mass: share.classRatio ? pooled.mass : null }, totalSteps);
        if (share.weights) {
          const next = await secureFedBn(secure, joint.map((j) => j.unet.getWeights()), joint.map((j) => j.numExamples), r, global, hooks, share.localPrefixes);
          global = next.global;
          for (const j of joint) j.receive(global, next.isLocal, share.personal);
        }
      } else {
        for (const j of joint) {
          j.statistics(1 / sa.maxPixels);
          j.train(null, totalSteps);
        }
      }
      hooks.onRound?.({ seed: p.seed, mode, round: r, sites: joint, score: () => joint.map((j, i) => scoreTeacher(p, j, i)) });
      const kept = joint[0].method === 'mean-teacher' ? `, kept pseudo-label fraction ${joint.map((j) => j.keptFraction.toFixed(2)).join(' / ')}` : '';
      log(`seed ${p.seed} ${mode}: round ${r}/${cfg.adapt.rounds}${kept}`);
    }
    const finished = joint.map((j) => j.finish());
    // Which sites took the whole pooled package: the pooled curve and (with bnMoments) the pooled statistics.
    let packaged = joined;
    if (mode === 'federated' && share.bnMoments) {
      const bn = await securePooledBn(secure, joint, joined, cfg.adapt.rounds + 1, hooks, share.entropyTolerance, share.bnOwnWeight);
      packaged = bn.map((b) => b !== null && b.keep);
      log(`seed ${p.seed} federated: pooled BN statistics kept by ${bn.map((b, i) => `${d.targets[i].id} ${b === null ? '- (own curve)' : `${b.keep ? 'yes' : 'no'}${b.own === null ? '' : ` (entropy ${b.own.toFixed(4)} own / ${b.pooled!.toFixed(4)} pooled)`}`}`).join(', ')}`);
    }
    let dice = joint.map((j, i) => scoreSite(p, j.unet, i, finished[i]));
    const partial = joined.map((j, i) => j && !packaged[i]);
    if (mode === 'federated' && share.keepAlone && partial.some((x) => x)) {
      // A site that took the pooled curve but refused the pooled statistics holds half a package (the pooled curve
      // brought nothing without the statistics on the tuning seeds, only noise). Each such site also adapts alone (its
      // own curve, statistics and rounds: local work only, no exchange) and keeps that result instead. Without a pooled
      // curve every site "took" its own, so a site that refuses the pooled statistics keeps its alone result: the
      // site's choice is between the whole federated package and adapting alone (sfda-multi-target-mricron.json).
      const alone = aloneDice ?? (await adaptSites(cfg, p, 'alone', { onProgress: (): void => undefined }));
      const what = share.inputCurve ? 'pooled curve without pooled statistics' : 'pooled statistics refused';
      log(`seed ${p.seed} federated: ${what}, alone result kept by ${d.targets.flatMap((t, i) => (partial[i] ? [`${t.id} (alone ${alone[i].toFixed(3)} instead of ${dice[i].toFixed(3)})`] : [])).join(', ')}`);
      dice = dice.map((x, i) => (partial[i] ? alone[i] : x));
    }
    log(`seed ${p.seed} ${mode}: Dice per site ${dice.map((x) => x.toFixed(3)).join(' / ')}`);
    return dice;
  } finally {
    for (const n of nets) n.dispose();
  }
}

/** Whether the federated mode runs a secure statistics sum each round (see `adaptSites`). */
export function sharesStatistics(cfg: MultiTargetConfig): boolean {
  const o: JointSiteOptions = cfg.adapt.options;
  const share = cfg.adapt.share;
  if (o.method === 'adabn') return false;
  if ((o.method ?? 'mean-teacher') === 'ratio-entropy') return share.classRatio && o.classPrior === 'pooled';
  return share.prototypes || share.classRatio;
}

async function runSeed(cfg: MultiTargetConfig, seed: number, hooks: MultiTargetHooks, phases: MultiTargetPhases): Promise<{ id: string; sourceOnly: number; curveAdaBn: number; alone: number; federated: number }[]> {
  const p = await prepareSeed(cfg, seed, hooks, phases);
  const out: Record<AdaptMode, number[]> = { alone: [], federated: [] };
  for (const mode of ['alone', 'federated'] as const) {
    const t0 = performance.now();
    out[mode] = await adaptSites(cfg, p, mode, hooks, undefined, mode === 'federated' ? out.alone : undefined);
    phases[mode] += performance.now() - t0;
  }
  return cfg.data.targets.map((t, i) => ({ id: t.id, sourceOnly: p.sourceOnly[i], curveAdaBn: p.curveAdaBn[i], alone: out.alone[i], federated: out.federated[i] }));
}

/** Runs every seed. The caller selects the tfjs backend first (initEngine()). */
export async function runMultiTarget(raw: MultiTargetConfig, hooks: MultiTargetHooks = {}): Promise<MultiTargetResult> {
  const cfg = multiTargetSchema.parse(raw);
  const t0 = performance.now();
  const phases: MultiTargetPhases = { source: 0, adapter: 0, alone: 0, federated: 0 };
  const sites: SiteOutcome[] = cfg.data.targets.map((t) => ({ id: t.id, alone: [], federated: [], sourceOnly: [], curveAdaBn: [] }));
  // Every secure sum reports its inputs (statistics, weights, the pooled curve's and BN moments' sums): count them.
  let secureRounds = 0;
  const counted: MultiTargetHooks = { ...hooks, onSiteInputs: (purpose, round, inputs, sum) => { secureRounds++; hooks.onSiteInputs?.(purpose, round, inputs, sum); } };
  for (const seed of cfg.seeds) {
    const r = await runSeed(cfg, seed, counted, phases);
    r.forEach((x, i) => {
      sites[i].alone.push(x.alone);
      sites[i].federated.push(x.federated);
      sites[i].sourceOnly.push(x.sourceOnly);
      sites[i].curveAdaBn.push(x.curveAdaBn);
    });
  }
  return { name: cfg.name, seeds: cfg.seeds, sites, secureRounds, wallMs: performance.now() - t0, phases };
}

/** The table: per site and for the mean over sites, mean ± std over seeds; the last column pairs the modes per seed. */
export function formatMultiTarget(r: MultiTargetResult): string {
  const m = (v: number[]): string => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    return `${mean >= 0 ? '' : '-'}${Math.abs(mean).toFixed(3)} ± ${std.toFixed(3)}`;
  };
  const cols = ['source-only', 'curve + AdaBN', 'adapting alone', 'federated', 'federated - alone'];
  const width = Math.max(12, ...r.sites.map((s) => s.id.length + 2));
  const row = (name: string, v: Pick<SiteOutcome, 'sourceOnly' | 'curveAdaBn' | 'alone' | 'federated'>): string =>
    name.padEnd(width) + [v.sourceOnly, v.curveAdaBn, v.alone, v.federated, v.federated.map((x, k) => x - v.alone[k])].map((x) => m(x).padEnd(19)).join('');
  const lines = ['site'.padEnd(width) + cols.map((c) => c.padEnd(19)).join('')];
  for (const s of r.sites) lines.push(row(s.id, s));
  const meanOver = (key: 'alone' | 'federated' | 'sourceOnly' | 'curveAdaBn'): number[] => r.seeds.map((_, k) => r.sites.reduce((a, s) => a + s[key][k], 0) / r.sites.length);
  lines.push(row('mean', { sourceOnly: meanOver('sourceOnly'), curveAdaBn: meanOver('curveAdaBn'), alone: meanOver('alone'), federated: meanOver('federated') }));
  const ph = r.phases;
  lines.push(`seeds ${r.seeds.join(', ')}; ${r.secureRounds} secure rounds; wall time ${(r.wallMs / 1000).toFixed(0)} s (source ${(ph.source / 1000).toFixed(0)} s, input adapters ${(ph.adapter / 1000).toFixed(0)} s, alone ${(ph.alone / 1000).toFixed(0)} s, federated ${(ph.federated / 1000).toFixed(0)} s)`);
  return lines.join('\n');
}

/** Loads the scenario, runs it, prints the table, writes DIR/summary.json when `outDir` is given. */
export async function runMultiTargetFile(file: string, outDir?: string, log: (m: string) => void = console.log): Promise<MultiTargetResult> {
  const cfg = parseMultiTargetConfig(JSON.parse(await readFile(file, 'utf8')), file);
  const result = await runMultiTarget(cfg, { onProgress: log });
  log(formatMultiTarget(result));
  if (outDir !== undefined) {
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'summary.json'), JSON.stringify(result, null, 2));
  }
  return result;
}
