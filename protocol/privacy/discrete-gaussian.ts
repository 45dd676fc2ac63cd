/**
 * The discrete Gaussian N_Z(0, sigma^2): P[X = x] proportional to exp(-x^2 / (2 sigma^2)) on the integers.
 *
 * Canonne, Kamath, Steinke, "The Discrete Gaussian for Differential Privacy", NeurIPS 2020 (arXiv 2004.00010),
 * Sec. 5: Algorithm 1 (Bernoulli(exp(-gamma))), Algorithm 2 (discrete Laplace by rejection from a uniform and a
 * geometric) and Algorithm 3 (discrete Gaussian by rejection from the discrete Laplace with scale t = floor(sigma)+1).
 * The paper's algorithms are exact with rational arithmetic; like TF Privacy's `discrete_gaussian_utils.py` (used for
 * the distributed discrete Gaussian of Kairouz, Liu, Steinke, ICML 2021) we decide each Bernoulli trial on a 53-bit
 * uniform, so each acceptance probability is exact to ~2^-53. The structure (integers only in the output, no float
 * rounding of the released value) is what matters for secure aggregation: every site adds an integer in Z_2^32.
 */
import { uniformInt, type NoiseSource } from './noise-source.ts';

/** Bernoulli(p) for p in [0, 1]. */
function bernoulli(p: number, src: NoiseSource): boolean {
  return src.nextDouble() < p;
}

/** Bernoulli(exp(-gamma)) for gamma >= 0 (CKS 2020, Algorithm 1: split gamma into whole units and a remainder). */
export function bernoulliExp(gamma: number, src: NoiseSource): boolean {
  let g = gamma;
  while (g > 1) {
    if (!bernoulli(Math.exp(-1), src)) return false;
    g -= 1;
  }
  return bernoulli(Math.exp(-g), src);
}

/** Discrete Laplace with scale t (P[X = x] proportional to exp(-|x|/t)), CKS 2020 Algorithm 2; t a positive integer. */
export function sampleDiscreteLaplace(t: number, src: NoiseSource): number {
  for (;;) {
    const u = uniformInt(src, t);
    if (!bernoulliExp(u / t, src)) continue;
    let v = 0;
    while (bernoulliExp(1, src)) v++;
    const x = u + t * v;
    const negative = bernoulli(0.5, src);
    if (negative && x === 0) continue;
    return negative ? -x : x;
  }
}

/** One draw of N_Z(0, sigma^2), CKS 2020 Algorithm 3. sigma = 0 gives 0. */
export function sampleDiscreteGaussian(sigma: number, src: NoiseSource): number {
  if (!(sigma >= 0) || !Number.isFinite(sigma)) throw new RangeError(`discrete Gaussian sigma must be a finite number >= 0, got ${sigma}`);
  if (sigma === 0) return 0;
  const t = Math.floor(sigma) + 1;
  const s2 = sigma * sigma;
  for (;;) {
    const y = sampleDiscreteLaplace(t, src);
    const d = Math.abs(y) - s2 / t;
    if (bernoulliExp((d * d) / (2 * s2), src)) return y;
  }
}

/** Fills `out` with independent N_Z(0, sigma^2) draws. */
export function fillDiscreteGaussian(out: Int32Array | Float64Array, sigma: number, src: NoiseSource): void {
  for (let i = 0; i < out.length; i++) out[i] = sampleDiscreteGaussian(sigma, src);
}

/**
 * The variance of N_Z(0, sigma^2), which is slightly below sigma^2 (CKS 2020, Prop. 19/Cor. 9):
 * computed by summing the pmf (|x| up to sigma * 40 + 40; the tail beyond is below 1e-300).
 */
export function discreteGaussianVariance(sigma: number): number {
  if (sigma === 0) return 0;
  const lim = Math.ceil(sigma * 40 + 40);
  let z = 1;
  let m2 = 0;
  for (let x = 1; x <= lim; x++) {
    const p = Math.exp((-x * x) / (2 * sigma * sigma));
    z += 2 * p;
    m2 += 2 * x * x * p;
  }
  return m2 / z;
}
