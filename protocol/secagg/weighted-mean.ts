/**
 * FedAvg through secure aggregation: the coordinator may only see sums, so each site uploads
 * [c * w_i, c * n_i] for its update w_i and example count n_i, and the coordinator divides the two sums
 * (McMahan et al., AISTATS 2017, Alg. 1: w = sum_k n_k w_k / sum_k n_k). The common factor c = 1 / maxExamples
 * (a public bound) keeps c * n_i <= 1 and c * n_i * |w_i| <= |w_i| inside the quantization clip range.
 * Flower's SecAgg+ uploads [w, w * params] the same way.
 */
import { SecAggError } from './errors.ts';

/** Name of the packed entry that carries c * n_i. */
export const EXAMPLE_COUNT_KEY = '__examples';

/** The named vectors a site feeds to `packVectors` for a weighted mean. */
export function weightedContribution(
  update: Record<string, Float32Array>,
  exampleCount: number,
  maxExamples: number,
): Record<string, Float32Array> {
  if (!Number.isFinite(exampleCount) || exampleCount < 0 || exampleCount > maxExamples || !(maxExamples > 0)) {
    throw new SecAggError('bad-input', `example count ${exampleCount} must lie in [0, maxExamples=${maxExamples}]`);
  }
  if (EXAMPLE_COUNT_KEY in update) throw new SecAggError('bad-input', `update may not contain "${EXAMPLE_COUNT_KEY}"`);
  const c = exampleCount / maxExamples;
  const out: Record<string, Float32Array> = { [EXAMPLE_COUNT_KEY]: Float32Array.of(c) };
  for (const [name, v] of Object.entries(update)) out[name] = v.map((x) => x * c);
  return out;
}

/**
 * Turns unpacked sums of `weightedContribution`s into the weighted mean and the total example count.
 * Throws `below-threshold` when the total weight is zero (nothing to average).
 */
export function weightedMeanFromSums(
  sums: Record<string, Float32Array>,
  maxExamples: number,
): { mean: Record<string, Float32Array>; totalExamples: number } {
  const w = sums[EXAMPLE_COUNT_KEY]?.[0];
  if (w === undefined) throw new SecAggError('bad-input', `sums lack "${EXAMPLE_COUNT_KEY}"`);
  if (!(w > 0)) throw new SecAggError('below-threshold', 'total example weight is zero');
  const mean: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(sums)) if (name !== EXAMPLE_COUNT_KEY) mean[name] = v.map((x) => x / w);
  return { mean, totalExamples: w * maxExamples };
}
