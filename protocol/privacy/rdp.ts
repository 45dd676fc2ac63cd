/**
 * Rényi differential privacy of the Sampled Gaussian Mechanism (SGM): each record is included with probability q,
 * the sum of the included records (L2 sensitivity 1) gets N(0, sigma^2) noise.
 *
 * Mironov, Talwar, Zhang, "Rényi Differential Privacy of the Sampled Gaussian Mechanism", arXiv 1908.10530, Sec. 3.3:
 * RDP at order alpha is log(A_alpha) / (alpha - 1), with
 *   integer alpha:  A_alpha = sum_{i=0..alpha} C(alpha, i) q^i (1-q)^(alpha-i) exp((i^2 - i) / (2 sigma^2))
 *   fractional alpha: A_alpha = A_0 + A_1, the integrals over (-inf, z0] and [z0, inf) with
 *     z0 = sigma^2 log(1/q - 1) + 1/2, each an alternating binomial series with erfc tails (their Sec. 3.3).
 * Both are evaluated in log space exactly as TF Privacy `rdp_accountant.py` and Opacus
 * `opacus/accountants/analysis/rdp.py` do (same special cases, same series stopping rule), so the numbers agree
 * with those accountants to rounding.
 */
import { logErfc } from './log-erfc.ts';
import { PrivacyError } from './privacy-error.ts';

/** log(exp(x) + exp(y)) without overflow. */
export function logAdd(x: number, y: number): number {
  const a = Math.min(x, y);
  const b = Math.max(x, y);
  if (a === -Infinity) return b;
  return Math.log1p(Math.exp(a - b)) + b;
}

/** log(exp(x) - exp(y)) for x >= y (Opacus `_log_sub`). */
export function logSub(x: number, y: number): number {
  if (x < y) throw new PrivacyError('numerical', `log-space subtraction would be negative (${x} < ${y})`);
  if (y === -Infinity) return x;
  if (x === y) return -Infinity;
  const d = Math.expm1(x - y);
  // Python's math.expm1 raises OverflowError where JS returns Infinity; Opacus then returns logx.
  return Number.isFinite(d) ? Math.log(d) + y : x;
}

/** log C(n, k) for integers 0 <= k <= n, summed in log space so it never overflows. */
function logBinomialInt(n: number, k: number): number {
  const m = Math.min(k, n - k);
  let acc = 0;
  for (let j = 1; j <= m; j++) acc += Math.log(n - m + j) - Math.log(j);
  return acc;
}

/** log A_alpha for integer alpha >= 2, 0 < q < 1 (Mironov et al. 2019, Sec. 3.3, the binomial expansion). */
function logAInt(q: number, sigma: number, alpha: number): number {
  const logQ = Math.log(q);
  const log1mQ = Math.log1p(-q);
  let logA = -Infinity;
  for (let i = 0; i <= alpha; i++) {
    const logCoef = logBinomialInt(alpha, i) + i * logQ + (alpha - i) * log1mQ;
    logA = logAdd(logA, logCoef + (i * i - i) / (2 * sigma * sigma));
  }
  return logA;
}

/**
 * log A_alpha for fractional alpha, 0 < q < 1: the two-sided series of Mironov et al. 2019, Sec. 3.3, with
 * the stopping rule of TF Privacy / Opacus (stop once both new terms are below e^-30).
 */
function logAFrac(q: number, sigma: number, alpha: number): number {
  let logA0 = -Infinity;
  let logA1 = -Infinity;
  const z0 = sigma * sigma * Math.log(1 / q - 1) + 0.5;
  const logQ = Math.log(q);
  const log1mQ = Math.log(1 - q);
  const twoS2 = 2 * sigma * sigma;
  let coef = 1; // C(alpha, i) for real alpha, updated by the ratio (alpha - i + 1) / i
  for (let i = 0; ; i++) {
    if (i > 0) coef *= (alpha - i + 1) / i;
    const logCoef = Math.log(Math.abs(coef));
    const j = alpha - i;
    const logT0 = logCoef + i * logQ + j * log1mQ;
    const logT1 = logCoef + j * logQ + i * log1mQ;
    const logE0 = Math.log(0.5) + logErfc((i - z0) / (Math.SQRT2 * sigma));
    const logE1 = Math.log(0.5) + logErfc((z0 - j) / (Math.SQRT2 * sigma));
    const logS0 = logT0 + (i * i - i) / twoS2 + logE0;
    const logS1 = logT1 + (j * j - j) / twoS2 + logE1;
    if (coef > 0) {
      logA0 = logAdd(logA0, logS0);
      logA1 = logAdd(logA1, logS1);
    } else {
      logA0 = logSub(logA0, logS0);
      logA1 = logSub(logA1, logS1);
    }
    if (Math.max(logS0, logS1) < -30) break;
    if (i > 100_000) throw new PrivacyError('numerical', `fractional RDP series did not converge (q=${q}, sigma=${sigma}, alpha=${alpha})`);
  }
  return logAdd(logA0, logA1);
}

function checkArgs(q: number, sigma: number, alpha: number): void {
  if (!(q >= 0 && q <= 1)) throw new PrivacyError('bad-argument', `sampling rate must be in [0, 1], got ${q}`);
  if (!(sigma >= 0) || sigma === Infinity) throw new PrivacyError('bad-argument', `noise multiplier must be a finite number >= 0, got ${sigma}`);
  if (!(alpha > 1)) throw new PrivacyError('bad-argument', `RDP order must be > 1, got ${alpha}`);
}

/**
 * RDP of ONE step of the sampled Gaussian mechanism at order alpha (can be Infinity).
 * Special cases as in Opacus `_compute_rdp`: q = 0 -> 0; sigma = 0 -> Infinity; q = 1 -> alpha / (2 sigma^2)
 * (the plain Gaussian mechanism, Mironov 2017, Prop. 7).
 */
export function sampledGaussianRdp(q: number, sigma: number, alpha: number): number {
  checkArgs(q, sigma, alpha);
  if (q === 0) return 0;
  if (sigma === 0) return Infinity;
  if (q === 1) return alpha / (2 * sigma * sigma);
  if (alpha === Infinity) return Infinity;
  const logA = Number.isInteger(alpha) ? logAInt(q, sigma, alpha) : logAFrac(q, sigma, alpha);
  return logA / (alpha - 1);
}

/** RDP of `steps` compositions of the SGM at every order (RDP composes additively, Mironov 2017, Prop. 1). */
export function computeRdp(q: number, sigma: number, steps: number, orders: readonly number[]): number[] {
  if (!Number.isInteger(steps) || steps < 0) throw new PrivacyError('bad-argument', `steps must be an integer >= 0, got ${steps}`);
  return orders.map((a) => (steps === 0 ? 0 : sampledGaussianRdp(q, sigma, a) * steps));
}
