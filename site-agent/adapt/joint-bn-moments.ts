/**
 * Pooled target batch-norm statistics for several new hospitals with the same kind of scanner: AdaBN (Li, Wang, Shi,
 * Liu, Hou, "Revisiting Batch Normalization For Practical Domain Adaptation", ICLR-W 2017, arXiv 1603.04779, sec. 3.1,
 * Alg. 1) estimated on the union of the sites' target slices instead of one site's, without any slice leaving its site.
 * Each site runs the same one-pass AdaBN forward as adabn.ts (every batch normalised with its own moments) and keeps,
 * per BN layer l and channel k, the sufficient statistics of the batch moments weighted by the batch's slices n_b:
 *   N = Σ_b n_b,   S1_lk = Σ_b n_b μ_blk,   S2_lk = Σ_b n_b (σ²_blk + μ_blk²).
 * Summed over sites by secure aggregation (the coordinator learns only the sums: Bonawitz et al., CCS 2017; Bell et al.,
 * CCS 2020), the pooled statistics are μ_lk = ΣS1 / ΣN and σ²_lk = ΣS2 / ΣN - μ_lk², exactly what adabn.ts's cumulative
 * average would give on the sites' slices put together in the same batches. For one site this is its own AdaBN.
 * Pooling is only right when the sites' inputs are alike (FedBN, Li et al., ICLR 2021, keeps BN local across different
 * scanners for that reason): the sites see the target through their own input curves, and each site decides
 * label-free whether to take the pooled statistics (`choosePooledBn` below).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { AdaptError } from './adapt-error.ts';
import { disposeStats, epochBatches, imageBatch, meanEntropy } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

/** One site's (or the pooled) BN moment sums: slices N and, per BN layer, S1 and S2 per channel. */
export interface BnMomentSums {
  readonly n: number;
  readonly layers: ReadonlyMap<string, { readonly sum: Float64Array; readonly sumSq: Float64Array }>;
}

/** The site's sums over its target (the model's weights and BN statistics are left as they are). */
export function targetBnMomentSums(unet: UNet, target: UnlabeledSlices, batchSize = 8): BnMomentSums {
  validateUnlabeled(target);
  const layers = new Map<string, { sum: Float64Array; sumSq: Float64Array }>();
  let n = 0;
  for (const idx of epochBatches(target.n, batchSize, null)) {
    const x = imageBatch(target, idx);
    const r = unet.forward(x, { bn: 'batch' });
    for (const [l, st] of r.batchStats) {
      const mean = st.mean.dataSync();
      const variance = st.variance.dataSync();
      let acc = layers.get(l);
      if (acc === undefined) layers.set(l, (acc = { sum: new Float64Array(mean.length), sumSq: new Float64Array(mean.length) }));
      for (let k = 0; k < mean.length; k++) {
        acc.sum[k] += idx.length * mean[k];
        acc.sumSq[k] += idx.length * (variance[k] + mean[k] * mean[k]);
      }
    }
    n += idx.length;
    disposeStats(r.batchStats);
    r.logits.dispose();
    r.latent.dispose();
    x.dispose();
  }
  return { n, layers };
}

/** Named vectors of the sums, every value times `scale` (so that they fit the secure-aggregation clipping range). */
export function bnMomentVectors(s: BnMomentSums, scale: number): Record<string, Float32Array> {
  if (!(scale > 0 && Number.isFinite(scale))) throw new AdaptError('BAD_OPTION', `BN moment scale must be > 0, got ${scale}`);
  const out: Record<string, Float32Array> = { 'bn/n': Float32Array.of(s.n * scale) };
  for (const [l, m] of s.layers) {
    out[`bn/${l}/sum`] = Float32Array.from(m.sum, (v) => v * scale);
    out[`bn/${l}/sumsq`] = Float32Array.from(m.sumSq, (v) => v * scale);
  }
  return out;
}

/** The sums back from summed vectors (unscaled); `layers` names the BN layers expected. */
export function bnMomentsFromVectors(sums: Record<string, Float32Array>, layers: readonly string[], scale: number): BnMomentSums {
  const get = (name: string): Float32Array => {
    const v = sums[name];
    if (v === undefined) throw new AdaptError('BAD_SHAPE', `BN moment sums: "${name}" is missing`);
    return v;
  };
  const n = get('bn/n')[0] / scale;
  if (!(n > 0)) throw new AdaptError('BAD_SHAPE', `BN moment sums: no slices in the sum (N = ${n})`);
  return { n, layers: new Map(layers.map((l) => [l, { sum: Float64Array.from(get(`bn/${l}/sum`), (v) => v / scale), sumSq: Float64Array.from(get(`bn/${l}/sumsq`), (v) => v / scale) }])) };
}

/** Several sites' sums added (what the masked sum computes), for tests and the clear-text check. */
export function addBnMomentSums(list: readonly BnMomentSums[]): BnMomentSums {
  if (list.length === 0) throw new AdaptError('BAD_OPTION', 'addBnMomentSums: nothing to add');
  const layers = new Map<string, { sum: Float64Array; sumSq: Float64Array }>();
  for (const s of list) {
    for (const [l, m] of s.layers) {
      let acc = layers.get(l);
      if (acc === undefined) layers.set(l, (acc = { sum: new Float64Array(m.sum.length), sumSq: new Float64Array(m.sum.length) }));
      m.sum.forEach((v, k) => (acc.sum[k] += v));
      m.sumSq.forEach((v, k) => (acc.sumSq[k] += v));
    }
  }
  return { n: list.reduce((a, s) => a + s.n, 0), layers };
}

/**
 * The moments of the mixture α · P_own + (1 - α) · P_pooled of the site's own target and the federation's pooled one:
 * per channel E[x] and E[x²] are the same convex combination of the two distributions' raw moments (so the mixture's
 * variance also counts the spread between the two means), returned as sums over N = 1. α = 1 is the site's own AdaBN,
 * α = 0 the pooled one. Between them it is a shrinkage of one 8-slice case's noisy statistics towards the federation's,
 * the target-target counterpart of α-BN's source/target mix (You, Li, Zhao, "Test-time batch statistics calibration
 * for covariate shift", arXiv 2110.04065, 2021: μ = α μ_s + (1 - α) μ_t, likewise σ²), taken here on raw moments so
 * that the variance is the mixture's. `own` and `pooled` must hold the same layers and channels.
 */
export function mixBnMomentSums(own: BnMomentSums, pooled: BnMomentSums, ownWeight: number): BnMomentSums {
  if (!(ownWeight >= 0 && ownWeight <= 1)) throw new AdaptError('BAD_OPTION', `ownWeight must be in [0, 1], got ${ownWeight}`);
  if (!(own.n > 0 && pooled.n > 0)) throw new AdaptError('BAD_SHAPE', `BN moment sums: no slices (own N = ${own.n}, pooled N = ${pooled.n})`);
  const layers = new Map<string, { sum: Float64Array; sumSq: Float64Array }>();
  for (const [l, p] of pooled.layers) {
    const o = own.layers.get(l);
    if (o === undefined || o.sum.length !== p.sum.length) throw new AdaptError('BAD_SHAPE', `BN moment sums: layer "${l}" differs between own and pooled`);
    const mix = (a: Float64Array, b: Float64Array): Float64Array => Float64Array.from(a, (v, k) => (ownWeight * v) / own.n + ((1 - ownWeight) * b[k]) / pooled.n);
    layers.set(l, { sum: mix(o.sum, p.sum), sumSq: mix(o.sumSq, p.sumSq) });
  }
  return { n: 1, layers };
}

/** The model's running BN statistics as moment sums over N = 1 (S1 = μ, S2 = σ² + μ²), e.g. the source model's. */
export function runningBnMoments(unet: UNet): BnMomentSums {
  const layers = new Map<string, { sum: Float64Array; sumSq: Float64Array }>();
  for (const l of unet.bnLayers) {
    const mean = unet.bnStats.get(`${l}.mean`)?.dataSync();
    const variance = unet.bnStats.get(`${l}.var`)?.dataSync();
    if (mean === undefined || variance === undefined) throw new AdaptError('BAD_SHAPE', `BN layer "${l}" has no running statistics`);
    layers.set(l, { sum: Float64Array.from(mean), sumSq: Float64Array.from(variance, (v, k) => v + mean[k] * mean[k]) });
  }
  return { n: 1, layers };
}

/** Sets every BN layer's running statistics to the pooled moments μ = S1/N, σ² = max(0, S2/N - μ²). */
export function setBnFromMomentSums(unet: UNet, s: BnMomentSums): void {
  const stats = new Map<string, { mean: tf.Tensor1D; variance: tf.Tensor1D }>();
  for (const [l, m] of s.layers) {
    const mean = Float32Array.from(m.sum, (v) => v / s.n);
    const variance = Float32Array.from(m.sumSq, (v, k) => Math.max(0, v / s.n - mean[k] * mean[k]));
    stats.set(l, { mean: tf.tensor1d(mean), variance: tf.tensor1d(variance) });
  }
  try {
    unet.updateRunningStats(stats, 1);
  } finally {
    disposeStats(stats);
  }
}

/** Mean prediction entropy of `unet` (running BN statistics) over the target: the pooled-statistics check's criterion. */
export function meanTargetEntropy(unet: UNet, target: UnlabeledSlices, batchSize = 8): number {
  let sum = 0;
  for (const idx of epochBatches(target.n, batchSize, null)) {
    const e = tf.tidy(() => meanEntropy(unet.forward(imageBatch(target, idx), { bn: 'running', collectStats: false }).logits));
    sum += e.dataSync()[0] * idx.length;
    e.dispose();
  }
  return sum / target.n;
}

/**
 * A site's label-free check of pooled BN statistics against its own: with the model as it is (its own statistics set)
 * and the pooled sums, it keeps the pooled statistics unless its mean prediction entropy on its target rose by more than
 * `entropyTolerance` (relative; TENT's premise that lower entropy goes with lower error, Wang et al., ICLR 2021, sec. 3;
 * 0.05 is the safeguard's default, safeguard.ts, not tuned here). A negative tolerance asks for a gain instead: the
 * pooled statistics are kept only when they LOWER the entropy by at least |entropyTolerance| (relative). Returns both
 * entropies and the choice; the model ends with the chosen statistics.
 */
export function choosePooledBn(unet: UNet, target: UnlabeledSlices, pooled: BnMomentSums, entropyTolerance: number, batchSize = 8): { own: number; pooled: number; keep: boolean } {
  if (!(entropyTolerance > -1)) throw new AdaptError('BAD_OPTION', `entropyTolerance must be > -1, got ${entropyTolerance}`);
  const before = unet.getWeights().filter((t) => t.name.endsWith('.mean') || t.name.endsWith('.var'));
  const own = meanTargetEntropy(unet, target, batchSize);
  setBnFromMomentSums(unet, pooled);
  const h = meanTargetEntropy(unet, target, batchSize);
  const keep = h <= own * (1 + entropyTolerance);
  if (!keep) unet.setWeights(before, { partial: true });
  return { own, pooled: h, keep };
}
