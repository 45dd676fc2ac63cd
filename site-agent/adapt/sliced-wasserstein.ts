/**
 * Sliced Wasserstein distance between two equally sized point sets, differentiable in both.
 *
 * Stan & Rostami, "Unsupervised model adaptation for source-free segmentation of medical images", MedIA 95 (2024)
 * 103179, section 3 (eq. for SWD): project both sets on L random unit directions (redrawn at every call), sort each
 * 1D projection and match quantiles, and average the squared differences. Sorting happens outside the autodiff
 * graph (argsort in JS) and enters it through `gather`, whose gradient routes to the matched points — the same
 * subgradient that a differentiable sort would give.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { Rng } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';

/** L random directions on the unit sphere in R^d, [d, L] row-major (normalised Gaussian vectors). */
export function randomUnitProjections(dim: number, numProjections: number, rng: Rng): Float32Array {
  const data = new Float32Array(dim * numProjections);
  const col = new Float64Array(dim);
  for (let l = 0; l < numProjections; l++) {
    let norm = 0;
    for (let i = 0; i < dim; i++) {
      col[i] = rng.normal();
      norm += col[i] * col[i];
    }
    norm = Math.sqrt(norm) || 1;
    for (let i = 0; i < dim; i++) data[i * numProjections + l] = col[i] / norm;
  }
  return data;
}

/** Row indices that sort column l of an [n, L] row-major array. */
function sortColumn(values: Float32Array | Int32Array | Uint8Array, n: number, numProjections: number, l: number, idx: number[]): void {
  for (let i = 0; i < n; i++) idx[i] = i;
  idx.sort((p, q) => values[p * numProjections + l] - values[q * numProjections + l]);
}

/**
 * SWD^2 estimate: mean over L directions and n quantiles of (sort(a·θ)_i - sort(b·θ)_i)^2.
 * `a` and `b` are [n, d] with the same n (sample the larger set down before calling).
 * @example
 * const d = slicedWasserstein(targetLatent, gmmSamples, 100, rng); // tf.Scalar, differentiable
 */
export function slicedWasserstein(a: tf.Tensor2D, b: tf.Tensor2D, numProjections: number, rng: Rng): tf.Scalar {
  const [n, d] = a.shape;
  if (b.shape[0] !== n || b.shape[1] !== d) {
    throw new AdaptError('BAD_SHAPE', `slicedWasserstein needs equal shapes, got [${a.shape}] and [${b.shape}]`);
  }
  if (!Number.isInteger(numProjections) || numProjections < 1) {
    throw new AdaptError('BAD_OPTION', `numProjections must be a positive integer, got ${numProjections}`);
  }
  if (n === 0) throw new AdaptError('BAD_SHAPE', 'slicedWasserstein needs at least one point');
  const L = numProjections;
  const thetaData = randomUnitProjections(d, L, rng);
  // The gradient is written out (instead of gather + its segment-sum gradient, which tfjs's cpu backend runs in
  // O(n·L)^2): d/d(a·θ)_il = 2 (a·θ_il - b·θ_jl) / (nL) for the b point j of equal rank, then chain through θᵀ.
  const swd = tf.customGrad(((x: tf.Tensor, y: tf.Tensor) => {
    const [va, vb] = tf.tidy(() => {
      const theta = tf.tensor2d(thetaData, [d, L]);
      return [tf.matMul(x as tf.Tensor2D, theta).dataSync() as Float32Array, tf.matMul(y as tf.Tensor2D, theta).dataSync() as Float32Array];
    });
    const ga = new Float32Array(n * L);
    const gb = new Float32Array(n * L);
    const ia = new Array<number>(n);
    const ib = new Array<number>(n);
    let sum = 0;
    const scale = 2 / (n * L);
    for (let l = 0; l < L; l++) {
      sortColumn(va, n, L, l, ia);
      sortColumn(vb, n, L, l, ib);
      for (let r = 0; r < n; r++) {
        const i = ia[r] * L + l;
        const j = ib[r] * L + l;
        const diff = va[i] - vb[j];
        sum += diff * diff;
        ga[i] = scale * diff;
        gb[j] = -scale * diff;
      }
    }
    return {
      value: tf.scalar(sum / (n * L)),
      gradFunc: (dy: tf.Tensor) => {
        const theta = tf.tensor2d(thetaData, [d, L]);
        return [
          tf.matMul(tf.mul(tf.tensor2d(ga, [n, L]), dy), theta, false, true),
          tf.matMul(tf.mul(tf.tensor2d(gb, [n, L]), dy), theta, false, true),
        ];
      },
    };
  }) as unknown as Parameters<typeof tf.customGrad>[0]);
  return swd(a, b) as tf.Scalar;
}
