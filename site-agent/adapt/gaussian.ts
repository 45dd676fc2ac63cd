/**
 * Full-covariance Gaussians formed from sufficient statistics (count, sum, sum of outer products), so that
 * statistics from several sites can be summed (by secure aggregation) before a Gaussian is formed.
 * All arithmetic in float64.
 */
import type { Rng } from '../../protocol/common/index.ts';
import { AdaptError } from './adapt-error.ts';

/** Per-class latent sufficient statistics: n, Σx (d), Σxxᵀ (d*d, row-major). */
export interface LatentMoments {
  count: number;
  sum: number[];
  sumOuter: number[];
}

export interface Gaussian {
  readonly mean: Float64Array;
  /** d*d row-major covariance (with the ridge added). */
  readonly cov: Float64Array;
  /** Lower Cholesky factor of cov, d*d row-major. */
  readonly chol: Float64Array;
}

export function emptyMoments(dim: number): LatentMoments {
  return { count: 0, sum: new Array<number>(dim).fill(0), sumOuter: new Array<number>(dim * dim).fill(0) };
}

/** Adds the rows of `x` ([n, d] row-major) whose `select` flag is set. */
export function accumulateMoments(m: LatentMoments, x: Float32Array, dim: number, select: Uint8Array): void {
  const n = select.length;
  for (let i = 0; i < n; i++) {
    if (!select[i]) continue;
    const off = i * dim;
    m.count++;
    for (let a = 0; a < dim; a++) {
      const xa = x[off + a];
      m.sum[a] += xa;
      const row = a * dim;
      for (let b = a; b < dim; b++) m.sumOuter[row + b] += xa * x[off + b];
    }
  }
}

/** Fills the lower triangle of sumOuter from the upper one (accumulateMoments only writes b >= a). */
export function symmetrizeMoments(m: LatentMoments, dim: number): void {
  for (let a = 0; a < dim; a++) for (let b = 0; b < a; b++) m.sumOuter[a * dim + b] = m.sumOuter[b * dim + a];
}

export function addMoments(into: LatentMoments, other: LatentMoments): void {
  into.count += other.count;
  for (let i = 0; i < into.sum.length; i++) into.sum[i] += other.sum[i];
  for (let i = 0; i < into.sumOuter.length; i++) into.sumOuter[i] += other.sumOuter[i];
}

/** Cholesky factorisation A = L Lᵀ of a symmetric positive-definite d*d matrix; throws if not SPD. */
export function cholesky(a: Float64Array, d: number): Float64Array {
  const l = new Float64Array(d * d);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j <= i; j++) {
      let s = a[i * d + j];
      for (let k = 0; k < j; k++) s -= l[i * d + k] * l[j * d + k];
      if (i === j) {
        if (!(s > 0)) throw new AdaptError('GMM_UNAVAILABLE', `covariance is not positive definite (pivot ${i} = ${s})`);
        l[i * d + i] = Math.sqrt(s);
      } else {
        l[i * d + j] = s / l[j * d + j];
      }
    }
  }
  return l;
}

/**
 * Maximum-likelihood Gaussian from moments: μ = Σx/n, Σ = Σxxᵀ/n - μμᵀ, plus `ridge`·I so that a rank-deficient
 * covariance (few pixels, dead ReLU channels) still has a Cholesky factor.
 */
export function gaussianFromMoments(m: LatentMoments, dim: number, ridge = 1e-4): Gaussian {
  if (m.count < 1) throw new AdaptError('GMM_UNAVAILABLE', 'cannot form a Gaussian from zero samples');
  const mean = new Float64Array(dim);
  for (let a = 0; a < dim; a++) mean[a] = m.sum[a] / m.count;
  const cov = new Float64Array(dim * dim);
  for (let a = 0; a < dim; a++) {
    for (let b = 0; b < dim; b++) {
      // sumOuter may hold only its upper triangle if symmetrizeMoments was not called; read symmetric.
      const s = a <= b ? m.sumOuter[a * dim + b] : m.sumOuter[b * dim + a];
      cov[a * dim + b] = s / m.count - mean[a] * mean[b];
    }
    cov[a * dim + a] = Math.max(cov[a * dim + a], 0) + ridge;
  }
  return { mean, cov, chol: cholesky(cov, dim) };
}

/** n samples μ + L z, z ~ N(0, I), written as rows into out (n*d, from row offset `row`). */
export function sampleGaussian(g: Gaussian, dim: number, n: number, rng: Rng, out: Float32Array, row = 0): void {
  const z = new Float64Array(dim);
  for (let s = 0; s < n; s++) {
    for (let i = 0; i < dim; i++) z[i] = rng.normal();
    const off = (row + s) * dim;
    for (let i = 0; i < dim; i++) {
      let v = g.mean[i];
      for (let k = 0; k <= i; k++) v += g.chol[i * dim + k] * z[k];
      out[off + i] = v;
    }
  }
}
