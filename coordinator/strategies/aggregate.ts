/**
 * Weight arithmetic as pure functions over typed arrays (Flower's `aggregate.py` in spirit): no I/O, no tfjs.
 * Accumulation is in float64 so that averaging many sites does not lose float32 precision.
 */
import type { WeightSet, NamedTensor } from '../../protocol/index.ts';

export type AggregationErrorCode = 'empty' | 'zero_weight' | 'bad_weight' | 'shape_mismatch' | 'non_finite';

export class AggregationError extends Error {
  override readonly name = 'AggregationError';
  constructor(
    readonly code: AggregationErrorCode,
    reason: string,
  ) {
    super(`${code}: ${reason}`);
  }
}

/** One site's contribution: its weights and how many examples they were trained on. */
export interface WeightedUpdate {
  readonly weights: WeightSet;
  readonly numExamples: number;
}

/** sum_k w_k x_k / sum_k w_k, element-wise. Throws AggregationError on empty input, bad weights or lengths. */
export function weightedMean(arrays: readonly Float32Array[], weights: readonly number[]): Float32Array {
  if (arrays.length === 0) throw new AggregationError('empty', 'nothing to average');
  if (arrays.length !== weights.length) throw new AggregationError('bad_weight', `${arrays.length} arrays but ${weights.length} weights`);
  let total = 0;
  for (const w of weights) {
    if (!Number.isFinite(w) || w < 0) throw new AggregationError('bad_weight', `weight ${w} is not a finite non-negative number`);
    if (w === 0) throw new AggregationError('zero_weight', 'a contribution has weight 0');
    total += w;
  }
  // A site claiming an absurd example count must not zero everyone else's weight (w / Infinity = 0).
  if (!Number.isFinite(total)) throw new AggregationError('bad_weight', `the weights sum to ${total}`);
  const n = arrays[0].length;
  for (const a of arrays) if (a.length !== n) throw new AggregationError('shape_mismatch', `length ${a.length} differs from ${n}`);
  const acc = new Float64Array(n);
  for (let k = 0; k < arrays.length; k++) {
    const a = arrays[k];
    const w = weights[k] / total;
    for (let i = 0; i < n; i++) acc[i] += w * a[i];
  }
  return Float32Array.from(acc);
}

/** Throw unless `update` has exactly the reference's tensor names, order-independent, shapes and finite values. */
export function checkUpdateMatches(reference: WeightSet, update: WeightSet): void {
  if (update.length !== reference.length) {
    throw new AggregationError('shape_mismatch', `update has ${update.length} tensors, model has ${reference.length}`);
  }
  const byName = new Map<string, NamedTensor>(update.map((t) => [t.name, t]));
  for (const ref of reference) {
    const t = byName.get(ref.name);
    if (!t) throw new AggregationError('shape_mismatch', `update lacks tensor ${ref.name}`);
    if (t.shape.length !== ref.shape.length || t.shape.some((d, i) => d !== ref.shape[i]) || t.data.length !== ref.data.length) {
      throw new AggregationError('shape_mismatch', `tensor ${ref.name}: shape [${t.shape.join(',')}] != [${ref.shape.join(',')}]`);
    }
    for (let i = 0; i < t.data.length; i++) {
      if (!Number.isFinite(t.data[i])) throw new AggregationError('non_finite', `tensor ${ref.name} has a non-finite value at ${i}`);
    }
  }
}

/**
 * FedAvg (McMahan et al., AISTATS 2017, Algorithm 1): w_{t+1} = sum_k (n_k / n) w_{t+1}^k.
 * Tensors for which `aggregate(name)` is false keep the reference values (FedBN keeps BN local).
 * The result follows the reference's tensor order.
 */
export function weightedAverageWeightSets(
  updates: readonly WeightedUpdate[],
  reference: WeightSet,
  aggregate: (name: string) => boolean = () => true,
): WeightSet {
  if (updates.length === 0) throw new AggregationError('empty', 'no updates to aggregate');
  for (const u of updates) {
    if (!Number.isInteger(u.numExamples) || u.numExamples < 0) throw new AggregationError('bad_weight', `numExamples ${u.numExamples}`);
    if (u.numExamples === 0) throw new AggregationError('zero_weight', 'an update reports 0 examples');
    checkUpdateMatches(reference, u.weights);
  }
  const weights = updates.map((u) => u.numExamples);
  const maps = updates.map((u) => new Map(u.weights.map((t) => [t.name, t.data])));
  return reference.map((ref) => ({
    name: ref.name,
    shape: [...ref.shape],
    data: aggregate(ref.name) ? weightedMean(maps.map((m) => m.get(ref.name) as Float32Array), weights) : new Float32Array(ref.data),
  }));
}

/** Example-weighted mean of each metric over the replies that report it (non-finite values skipped). */
export function weightedMetricMeans(replies: readonly { numExamples: number; metrics: Record<string, number> }[]): Record<string, number> {
  const sums = new Map<string, { s: number; w: number }>();
  for (const r of replies) {
    for (const [k, v] of Object.entries(r.metrics)) {
      if (!Number.isFinite(v) || r.numExamples <= 0) continue;
      const e = sums.get(k) ?? { s: 0, w: 0 };
      e.s += v * r.numExamples;
      e.w += r.numExamples;
      sums.set(k, e);
    }
  }
  const out: Record<string, number> = {};
  for (const [k, { s, w }] of sums) out[k] = s / w;
  return out;
}
