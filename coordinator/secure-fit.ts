/**
 * The fit stage of a round under secure aggregation: the coordinator learns only the sum of the sites'
 * [n_k/M * w_k, n_k/M, n_k/M * metric_k] (protocol/secagg/fit-contribution.ts), and hands the strategy ONE virtual
 * FitResult — the example-weighted mean weights, the total example count, the weighted mean metrics — exactly as
 * Flower's SecAgg+ workflow wraps an unchanged strategy. FedAvg, FedProx and FedAdam/FedYogi work on it unchanged;
 * FedBN's batch-norm tensors are not in the masked vector at all (they never leave the site).
 */
import nacl from 'tweetnacl';
import { toBase64, toHex } from '../protocol/bytes.ts';
import type { Enrollment } from '../protocol/enrollment.ts';
import type { Logger } from '../protocol/common/index.ts';
import { cloneWeightSet, sizeOfShape, type WeightSet } from '../protocol/named-tensor.ts';
import { makeSecAggConfig } from '../protocol/secagg/config.ts';
import { SecAggError, isSecAggError } from '../protocol/secagg/errors.ts';
import { fitAggregateFromSum, fitContributionLayout, type FitContributionSpec } from '../protocol/secagg/fit-contribution.ts';
import { checkQuantConfig, maxSafeScaleBits, quantizationErrorBound, type QuantConfig } from '../protocol/secagg/quantize.ts';
import { driveSecAgg, type SecAggTestHooks } from './secagg-driver.ts';
import type { SiteRegistry } from './site-registry.ts';
import type { FitInstruction, FitResult, RoundFailure, Strategy } from './strategies/strategy.ts';

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

export interface SecureFitInput {
  readonly round: number;
  readonly fitIns: readonly FitInstruction[];
  readonly global: WeightSet;
  readonly strategy: Strategy;
  readonly options: SecureAggregationOptions;
  readonly registry: SiteRegistry;
  readonly enrollment: Enrollment;
  readonly stageMs: number;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  readonly model: { id: string; bytes: Uint8Array };
  readonly hooks?: SecAggTestHooks;
}

export interface SecureFitOutcome {
  /** Empty, or the one virtual result. */
  readonly results: FitResult[];
  readonly failures: RoundFailure[];
  readonly included: string[];
  readonly excluded: string[];
  readonly totalExamples: number;
  /** Why the secure run aborted (below threshold, bad config), or null. */
  readonly error: string | null;
}

/** Tensor names the strategy aggregates (all when it does not say). */
export function aggregatedTensors(strategy: Strategy, global: WeightSet): { name: string; length: number }[] {
  return global.filter((t) => strategy.aggregatesTensor?.(t.name) ?? true).map((t) => ({ name: t.name, length: sizeOfShape(t.shape) }));
}

export async function runSecureFit(input: SecureFitInput): Promise<SecureFitOutcome> {
  const { round, options, global } = input;
  const siteIds = input.fitIns.map((i) => i.siteId);
  const configOf = new Map(input.fitIns.map((i) => [i.siteId, i.config]));
  const spec: FitContributionSpec = {
    tensors: aggregatedTensors(input.strategy, global),
    metrics: options.metrics ?? ['trainLoss'],
    maxExamples: options.maxExamples,
  };
  const allFailed = (reason: string, code: RoundFailure['code'] = 'site_error'): SecureFitOutcome => ({
    results: [],
    failures: siteIds.map((siteId) => ({ siteId, stage: 'fit', code, reason })),
    included: [],
    excluded: siteIds,
    totalExamples: 0,
    error: reason,
  });
  const sessionId = `fit-r${round}-${toHex(nacl.randomBytes(8))}`;
  let config;
  try {
    const layout = fitContributionLayout(spec);
    config = makeSecAggConfig({
      roundId: sessionId,
      siteIds,
      vectorLength: layout.totalLength,
      quant: quantFor(options, siteIds.length),
      ...(options.degree !== undefined ? { degree: options.degree } : {}),
      ...(options.threshold !== undefined ? { threshold: options.threshold } : {}),
    });
  } catch (e) {
    return allFailed(`secure aggregation cannot run this round: ${(e as Error).message}`);
  }
  const enrolled = new Map<string, Uint8Array>();
  for (const id of siteIds) {
    const k = input.enrollment.keyOf(id);
    if (!k) return allFailed(`"${id}" has no enrolled identity key`);
    enrolled.set(id, k);
  }
  const enrolledB64 = Object.fromEntries([...enrolled].map(([id, k]) => [id, toBase64(k)]));
  const outcome = await driveSecAgg({
    sessionId,
    config,
    enrolled,
    registry: input.registry,
    stageMs: input.stageMs,
    signal: input.signal,
    logger: input.logger,
    modelBytes: input.model.bytes,
    setupFor: (siteId) => ({
      purpose: 'fit',
      round,
      enrolled: enrolledB64,
      modelId: input.model.id,
      fit: { config: configOf.get(siteId)!, tensors: spec.tensors.map((t) => t.name), metrics: [...spec.metrics], maxExamples: spec.maxExamples },
    }),
    ...(input.hooks ? { hooks: input.hooks } : {}),
  });
  const failures: RoundFailure[] = outcome.failures.map((f) => ({ siteId: f.siteId, stage: 'fit', code: f.code, reason: `${f.stage}: ${f.reason}` }));
  if (!outcome.result) {
    // Aborted: every selected site is reported (the strategy gets the failures; the global model is kept).
    const failed = new Set(failures.map((f) => f.siteId));
    for (const id of siteIds) {
      if (!failed.has(id)) failures.push({ siteId: id, stage: 'fit', code: 'site_error', reason: `secure aggregation aborted: ${outcome.error?.message}` });
    }
    return { results: [], failures, included: [], excluded: siteIds, totalExamples: 0, error: outcome.error?.message ?? 'aborted' };
  }
  const { sum, included, excluded } = outcome.result;
  let agg;
  try {
    agg = fitAggregateFromSum(spec, sum, quantizationErrorBound(config.quant, included.length));
  } catch (e) {
    const reason = isSecAggError(e) ? e.message : `could not read the aggregate: ${(e as Error).message}`;
    return { ...allFailed(reason, 'invalid_reply'), failures: [...failures, ...allFailed(reason, 'invalid_reply').failures.filter((f) => included.includes(f.siteId))] };
  }
  const weights = cloneWeightSet(global).map((t) => {
    const m = agg.mean.get(t.name);
    return m ? { ...t, data: m } : t;
  });
  const virtual: FitResult = {
    siteId: SECURE_AGGREGATE_ID,
    weights,
    numExamples: agg.totalExamples,
    metrics: agg.metrics,
    aggregateOf: [...included],
  };
  return { results: agg.totalExamples > 0 ? [virtual] : [], failures, included: [...included], excluded: [...excluded], totalExamples: agg.totalExamples, error: null };
}
