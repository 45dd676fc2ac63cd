/**
 * What one site puts into the masked sum of a secure fit round, and how the coordinator reads the unmasked sum.
 * The packed vector is [n_k/M * w_k (every aggregated tensor), n_k/M, n_k/M * metric_k, n_k/M * [metric_k present]]
 * with M = maxExamples, the public bound (weighted-mean.ts). Its sum gives the FedAvg mean
 * sum_k n_k w_k / sum_k n_k (McMahan et al., AISTATS 2017, Alg. 1), the total example count, and example-weighted
 * metric means over the sites that reported each metric — and nothing per site.
 */
import { SecAggError } from './errors.ts';
import { packLayout, packVectors, unpackVectors, type PackLayout } from './pack.ts';
import { EXAMPLE_COUNT_KEY, weightedContribution, weightedMeanFromSums } from './weighted-mean.ts';

/** Prefix of the packed entry carrying n_k/M * metric_k. */
export const METRIC_PREFIX = '__metric/';
/** Prefix of the packed entry carrying n_k/M when the site reported the metric (so means ignore absent ones). */
export const METRIC_WEIGHT_PREFIX = '__metricWeight/';

export interface FitContributionSpec {
  /** Tensor names in the masked vector (the strategy's aggregated tensors; FedBN's BN tensors are not among them). */
  readonly tensors: readonly { readonly name: string; readonly length: number }[];
  /** Fit metrics aggregated as example-weighted means (e.g. `trainLoss`). */
  readonly metrics: readonly string[];
  readonly maxExamples: number;
}

function checkNames(spec: FitContributionSpec): void {
  const seen = new Set<string>();
  for (const t of spec.tensors) {
    if (t.name.startsWith('__')) throw new SecAggError('bad-input', `tensor name "${t.name}" is reserved (starts with "__")`);
    if (seen.has(t.name)) throw new SecAggError('bad-input', `tensor "${t.name}" listed twice`);
    seen.add(t.name);
  }
  if (new Set(spec.metrics).size !== spec.metrics.length) throw new SecAggError('bad-input', 'metric names listed twice');
}

/** The deterministic layout both sides derive from the spec. */
export function fitContributionLayout(spec: FitContributionSpec): PackLayout {
  checkNames(spec);
  const lengths: Record<string, number> = { [EXAMPLE_COUNT_KEY]: 1 };
  for (const t of spec.tensors) lengths[t.name] = t.length;
  for (const m of spec.metrics) {
    lengths[METRIC_PREFIX + m] = 1;
    lengths[METRIC_WEIGHT_PREFIX + m] = 1;
  }
  return packLayout(lengths);
}

/**
 * Site side: the packed float vector to mask. `update` must hold every spec tensor with its exact length;
 * non-finite metrics count as absent.
 */
export function fitContribution(
  spec: FitContributionSpec,
  update: ReadonlyMap<string, Float32Array>,
  numExamples: number,
  metrics: Readonly<Record<string, number>>,
): Float32Array {
  checkNames(spec);
  const named: Record<string, Float32Array> = {};
  for (const t of spec.tensors) {
    const v = update.get(t.name);
    if (!v) throw new SecAggError('bad-input', `the trained model lacks tensor "${t.name}"`);
    if (v.length !== t.length) throw new SecAggError('bad-input', `tensor "${t.name}" has ${v.length} values, expected ${t.length}`);
    named[t.name] = v;
  }
  for (const m of spec.metrics) {
    const x = metrics[m];
    const present = typeof x === 'number' && Number.isFinite(x);
    named[METRIC_PREFIX + m] = Float32Array.of(present ? x : 0);
    named[METRIC_WEIGHT_PREFIX + m] = Float32Array.of(present ? 1 : 0);
  }
  const { vector, layout } = packVectors(weightedContribution(named, numExamples, spec.maxExamples));
  if (layout.totalLength !== fitContributionLayout(spec).totalLength) {
    throw new SecAggError('bad-input', 'contribution layout differs from the spec');
  }
  return vector;
}

export interface FitAggregate {
  /** Example-weighted mean of each aggregated tensor. */
  readonly mean: Map<string, Float32Array>;
  /** Total examples of the included sites (rounded: the sum carries quantization error). */
  readonly totalExamples: number;
  /** Example-weighted mean of each metric over the sites that reported it. */
  readonly metrics: Record<string, number>;
}

/**
 * Coordinator side: the unmasked, dequantized sum -> weighted means. Metric weights below `minWeight` (the
 * quantization error of the sum) mean "nobody reported it" and the metric is left out.
 */
export function fitAggregateFromSum(spec: FitContributionSpec, sum: Float32Array, minWeight = 0): FitAggregate {
  const sums = unpackVectors(sum, fitContributionLayout(spec));
  const tensorSums: Record<string, Float32Array> = { [EXAMPLE_COUNT_KEY]: sums[EXAMPLE_COUNT_KEY] };
  for (const t of spec.tensors) tensorSums[t.name] = sums[t.name];
  const { mean, totalExamples } = weightedMeanFromSums(tensorSums, spec.maxExamples);
  const metrics: Record<string, number> = {};
  for (const m of spec.metrics) {
    const w = sums[METRIC_WEIGHT_PREFIX + m][0];
    if (w > minWeight) metrics[m] = sums[METRIC_PREFIX + m][0] / w;
  }
  return { mean: new Map(Object.entries(mean)), totalExamples: Math.round(totalExamples), metrics };
}
