/**
 * The fit stage of a round under secure aggregation: the coordinator learns only the sum of the sites'
 * [n_k/M * w_k, n_k/M, n_k/M * metric_k] (protocol/secagg/fit-contribution.ts), and hands the strategy ONE virtual
 * FitResult — the example-weighted mean weights, the total example count, the weighted mean metrics — exactly as
 * Flower's SecAgg+ workflow wraps an unchanged strategy. FedAvg, FedProx and FedAdam/FedYogi work on it unchanged;
 * FedBN's batch-norm tensors are not in the masked vector at all (they never leave the site).
 */
import { cloneWeightSet, sizeOfShape, type Enrollment, type WeightSet } from '../../protocol/index.ts';
import {
  checkQuantConfig,
  fitAggregateFromSum,
  fitContributionLayout,
  isSecAggError,
  maxSafeScaleBits,
  quantizationErrorBound,
  SecAggError,
  type FitContributionSpec,
  type QuantConfig,
  type SecAggResult,
} from '../../protocol/secagg/index.ts';
import type { FitResult, RoundFailure, Strategy } from '../strategies/index.ts';
import type { FitInput, FitOutcome, FitWorkflow } from './fit-workflow.ts';
import { driveSecAgg, newSessionId, prepareSecAgg, type PreparedSecAgg, type SecAggMonitor, type SecAggTestHooks } from './secagg-session.ts';

/** `CoordinatorOptions.secureAggregation`. */
export interface SecureAggregationOptions {
  /** Every value in the masked vector is clipped to [-clip, clip] (weights are first scaled by n_k / maxExamples <= 1). */
  clip: number;
  /** Fixed-point fraction bits; default: the finest step that cannot wrap for the round's number of sites. */
  scaleBits?: number;
  /** Shamir threshold t among a site's neighbours (default floor(2k/3)+1; must satisfy k/2 < t <= k). */
  threshold?: number;
  /** Neighbour degree k (default: complete graph for small rounds, logarithmic for large ones). */
  degree?: number;
  /** Public upper bound on any site's example count (the FedAvg weight is n_k / maxExamples). */
  maxExamples: number;
  /** Fit metrics aggregated as example-weighted means (default ['trainLoss']). */
  metrics?: string[];
}

/** Id of the one virtual FitResult a secure round gives the strategy. */
export const SECURE_AGGREGATE_ID = 'secure-aggregate';

/** The quantization a run with `numSites` sites uses (scaleBits defaulted to the finest safe one). */
export function quantFor(opts: SecureAggregationOptions, numSites: number): QuantConfig {
  const q = { clip: opts.clip, scaleBits: opts.scaleBits ?? maxSafeScaleBits(opts.clip, numSites) };
  checkQuantConfig(q, numSites);
  return q;
}

/**
 * Refuses, before the first round, options that cannot work: a non-positive bound, or a quantization that could
 * wrap around Z_2^32 for the largest number of sites that may take part (`maxSites`). Throws `SecAggError('bad-config'|'bad-input')`.
 */
export function validateSecureAggregation(opts: SecureAggregationOptions, maxSites: number): void {
  if (!(Number.isFinite(opts.maxExamples) && opts.maxExamples > 0)) {
    throw new SecAggError('bad-config', `secureAggregation.maxExamples must be a positive number, got ${opts.maxExamples}`);
  }
  for (const [k, v] of [['threshold', opts.threshold], ['degree', opts.degree]] as const) {
    if (v !== undefined && (!Number.isInteger(v) || v < 2)) throw new SecAggError('bad-config', `secureAggregation.${k} must be an integer >= 2, got ${v}`);
  }
  const metrics = opts.metrics ?? ['trainLoss'];
  if (metrics.some((m) => typeof m !== 'string' || m.length === 0 || m.length > 64)) {
    throw new SecAggError('bad-config', 'secureAggregation.metrics must be names of 1-64 characters');
  }
  quantFor(opts, Math.max(3, maxSites));
}

/** Tensor names the strategy aggregates (all when it does not say). */
export function aggregatedTensors(strategy: Strategy, global: WeightSet): { name: string; length: number }[] {
  return global.filter((t) => strategy.aggregatesTensor?.(t.name) ?? true).map((t) => ({ name: t.name, length: sizeOfShape(t.shape) }));
}

/** The secure fit workflow: the sites' weighted updates are summed by SecAgg+; the strategy gets one virtual result. */
export class SecureFitWorkflow implements FitWorkflow {
  readonly kind = 'secure';

  constructor(
    private readonly options: SecureAggregationOptions,
    private readonly enrollment: Enrollment,
    private readonly hooks?: SecAggTestHooks,
    private readonly monitor?: SecAggMonitor,
  ) {}

  async fit(input: FitInput): Promise<FitOutcome> {
    const failures: RoundFailure[] = [];
    // A selected site that is not connected is a failure now; the SecAgg run is set up for the others.
    const connected = input.instructions.filter((i) => {
      if (input.registry.get(i.siteId)) return true;
      failures.push({ siteId: i.siteId, stage: 'fit', code: 'disconnected', reason: 'site left before fit' });
      return false;
    });
    const siteIds = connected.map((i) => i.siteId);
    const spec: FitContributionSpec = {
      tensors: aggregatedTensors(input.strategy, input.global),
      metrics: this.options.metrics ?? ['trainLoss'],
      maxExamples: this.options.maxExamples,
    };
    const aborted = (reason: string, code: RoundFailure['code'] = 'site_error'): FitOutcome => ({
      results: [],
      failures: [...failures, ...siteIds.map((siteId) => ({ siteId, stage: 'fit' as const, code, reason }))],
      secure: { included: [], excluded: siteIds, totalExamples: 0, error: reason },
    });
    let prepared: PreparedSecAgg;
    try {
      prepared = prepareSecAgg({
        sessionId: newSessionId(`fit-r${input.round}`),
        siteIds,
        vectorLength: fitContributionLayout(spec).totalLength,
        quant: quantFor(this.options, siteIds.length),
        enrollment: this.enrollment,
        ...(this.options.degree !== undefined ? { degree: this.options.degree } : {}),
        ...(this.options.threshold !== undefined ? { threshold: this.options.threshold } : {}),
      });
    } catch (e) {
      input.logger.warn({ code: 'secagg_aborted', round: input.round, err: (e as Error).message }, 'secure aggregation cannot run this round');
      return aborted(`secure aggregation cannot run this round: ${(e as Error).message}`);
    }
    const configOf = new Map(connected.map((i) => [i.siteId, i.config]));
    const outcome = await driveSecAgg({
      ...input,
      purpose: 'fit',
      prepared,
      ...(this.monitor ? { monitor: this.monitor } : {}),
      ...(this.hooks ? { hooks: this.hooks } : {}),
      setupFor: (siteId) => ({
        purpose: 'fit',
        round: input.round,
        enrolled: prepared.enrolledB64,
        modelId: input.model.id,
        fit: { config: configOf.get(siteId)!, tensors: spec.tensors.map((t) => t.name), metrics: [...spec.metrics], maxExamples: spec.maxExamples },
      }),
    });
    failures.push(...outcome.failures.map((f) => ({ siteId: f.siteId, stage: 'fit' as const, code: f.code, reason: `${f.stage}: ${f.reason}` })));
    if (!outcome.result) {
      // Aborted: every selected site is reported (the strategy gets the failures; the global model is kept).
      const reason = outcome.error?.message ?? 'aborted';
      const failed = new Set(failures.map((f) => f.siteId));
      for (const id of siteIds) if (!failed.has(id)) failures.push({ siteId: id, stage: 'fit', code: 'site_error', reason: `secure aggregation aborted: ${reason}` });
      return { results: [], failures, secure: { included: [], excluded: siteIds, totalExamples: 0, error: reason } };
    }
    return this.virtualResult(input, spec, prepared, outcome.result, failures);
  }

  /** The one FitResult the strategy sees: the example-weighted mean of the included sites' tensors. */
  private virtualResult(input: FitInput, spec: FitContributionSpec, prepared: PreparedSecAgg, sum: SecAggResult, failures: RoundFailure[]): FitOutcome {
    const { included, excluded } = sum;
    let agg;
    try {
      agg = fitAggregateFromSum(spec, sum.sum, quantizationErrorBound(prepared.config.quant, included.length));
    } catch (e) {
      const reason = isSecAggError(e) ? e.message : `could not read the aggregate: ${(e as Error).message}`;
      const unread = included.map((siteId) => ({ siteId, stage: 'fit' as const, code: 'invalid_reply' as const, reason }));
      return { results: [], failures: [...failures, ...unread], secure: { included: [], excluded: prepared.config.siteIds.slice(), totalExamples: 0, error: reason } };
    }
    const weights = cloneWeightSet(input.global).map((t) => {
      const m = agg.mean.get(t.name);
      return m ? { ...t, data: m } : t;
    });
    const virtual: FitResult = { siteId: SECURE_AGGREGATE_ID, weights, numExamples: agg.totalExamples, metrics: agg.metrics, aggregateOf: [...included] };
    input.onReply?.({ stage: 'fit', siteId: SECURE_AGGREGATE_ID, numExamples: agg.totalExamples, metrics: { ...agg.metrics } });
    return {
      results: agg.totalExamples > 0 ? [virtual] : [],
      failures,
      secure: { included: [...included], excluded: [...excluded], totalExamples: agg.totalExamples, error: null },
    };
  }
}
