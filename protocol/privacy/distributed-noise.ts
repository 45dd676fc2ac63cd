/**
 * Distributed DP under secure aggregation: the Distributed Discrete Gaussian mechanism (Kairouz, Liu, Steinke,
 * "The Distributed Discrete Gaussian Mechanism for Federated Learning with Secure Aggregation", ICML 2021,
 * arXiv 2102.06387). Each site clips its update to L2 norm C, quantizes it to the integer grid of step
 * gamma = 2^-scaleBits (protocol/secagg/quantize.ts, round to nearest), and adds N_Z(0, sigma^2) to every integer
 * coordinate BEFORE masking. The coordinator only ever unmasks the sum, which already carries the noise of every
 * surviving site: it never sees an un-noised aggregate, unlike central DP.
 *
 * Sensitivity in the integer domain: a site's packed vector may sit on top of a public offset (the global model),
 * so the two roundings of "with" and "without" its update differ by at most 1 per coordinate:
 *   Delta_2 <= C / gamma + sqrt(d),   Delta_1 <= min(sqrt(d) Delta_2, Delta_2^2)   (integer vectors).
 * Privacy of the sum of n sites' noise (Kairouz et al., Thm 1 and Prop. 14, as their `compute_rdp_dgaussian`):
 *   tau = 10 sum_{k=1}^{n-1} exp(-2 pi^2 sigma^2 k / (k+1)),  s2 = Delta_2 / (sqrt(n) sigma),  s1 = Delta_1 / (sqrt(n) sigma)
 *   RDP(alpha) <= min( alpha/2 s2^2 + tau d,  alpha/2 (s2^2 + 2 s1 tau + tau^2 d),  alpha/2 (s2 + sqrt(d) tau)^2 ).
 * For sigma of a few units tau underflows to 0 and this is the Gaussian mechanism at multiplier sqrt(n) sigma / Delta_2.
 *
 * Dropouts: a site that drops after masking takes its noise share with it only if it is excluded from the sum; the
 * sum of n' < n survivors carries n' sigma^2 of variance. We calibrate sigma for the smallest survivor count the
 * round can finish with (`minSurvivors`, the secure-aggregation threshold), so any finished round is at least as
 * private as planned, at the price of (n / minSurvivors - 1) times the target variance of extra noise when all
 * sites survive. The ledger records the actual survivor count of each round.
 */
import { fillDiscreteGaussian } from './discrete-gaussian.ts';
import type { NoiseSource } from './noise-source.ts';
import { PrivacyError } from './privacy-error.ts';
import type { PrivacyEvent } from './ledger.ts';

export interface DistributedDpPlan {
  /** L2 clipping norm C of one site's update (model units). */
  readonly clip: number;
  /** Quantization fraction bits of the secure sum (gamma = 2^-scaleBits). */
  readonly scaleBits: number;
  /** Length d of the noised vector. */
  readonly dim: number;
  /** Target noise multiplier z: total noise std / integer sensitivity Delta_2 when `minSurvivors` sites survive. */
  readonly noiseMultiplier: number;
  /** Sites selected per round. */
  readonly sites: number;
  /** Fewest survivors a round can finish with (secure-aggregation threshold); default `sites`. */
  readonly minSurvivors?: number;
}

export interface DistributedDpParams {
  /** Integer-domain sensitivities. */
  readonly l2Sensitivity: number;
  readonly l1Sensitivity: number;
  /** Discrete Gaussian sigma every site adds to each integer coordinate. */
  readonly siteSigma: number;
  /** Noise variance of the sum (integer units^2) when all `sites` survive, and when only `minSurvivors` do. */
  readonly varianceAllSurvive: number;
  readonly varianceMinSurvivors: number;
  /** (n / minSurvivors - 1): extra variance over the target when everyone survives, as a fraction of the target. */
  readonly extraVarianceFraction: number;
}

/** Integer-domain sensitivities of a change of L2 norm <= clip after rounding to the grid 2^-scaleBits. */
export function roundedSensitivity(clip: number, scaleBits: number, dim: number): { l2: number; l1: number } {
  const l2 = clip * 2 ** scaleBits + Math.sqrt(dim);
  return { l2, l1: Math.min(Math.sqrt(dim) * l2, l2 * l2) };
}

export function planDistributedDp(plan: DistributedDpPlan): DistributedDpParams {
  const { clip, scaleBits, dim, noiseMultiplier: z, sites } = plan;
  const minSurvivors = plan.minSurvivors ?? sites;
  if (!(clip > 0) || !Number.isFinite(clip)) throw new PrivacyError('bad-argument', `clipping norm must be > 0, got ${clip}`);
  if (!(z > 0) || !Number.isFinite(z)) throw new PrivacyError('bad-argument', `noise multiplier must be > 0, got ${z}`);
  if (!Number.isInteger(dim) || dim < 1) throw new PrivacyError('bad-argument', `dimension must be an integer >= 1, got ${dim}`);
  if (!Number.isInteger(minSurvivors) || !Number.isInteger(sites) || minSurvivors < 1 || minSurvivors > sites) {
    throw new PrivacyError('bad-argument', `need 1 <= minSurvivors (${minSurvivors}) <= sites (${sites})`);
  }
  const { l2, l1 } = roundedSensitivity(clip, scaleBits, dim);
  const target = (z * l2) ** 2;
  const siteSigma = Math.sqrt(target / minSurvivors);
  return {
    l2Sensitivity: l2,
    l1Sensitivity: l1,
    siteSigma,
    varianceAllSurvive: sites * siteSigma ** 2,
    varianceMinSurvivors: target,
    extraVarianceFraction: sites / minSurvivors - 1,
  };
}

/** tau of Kairouz et al. Thm 1: how far the sum of n discrete Gaussians is from one discrete Gaussian. */
export function ddgTau(siteSigma: number, survivors: number): number {
  let tau = 0;
  for (let k = 1; k < survivors; k++) tau += Math.exp((-2 * Math.PI * Math.PI * siteSigma * siteSigma * k) / (k + 1));
  return 10 * tau;
}

/** RDP at order alpha of one release of the sum of `survivors` sites' noise (Kairouz et al., Prop. 14). */
export function ddgRdp(p: { l2Sensitivity: number; l1Sensitivity: number; siteSigma: number; survivors: number; dim: number }, alpha: number): number {
  if (p.survivors < 1 || p.siteSigma <= 0) return Infinity;
  const tau = ddgTau(p.siteSigma, p.survivors);
  const s2 = p.l2Sensitivity / (Math.sqrt(p.survivors) * p.siteSigma);
  const s1 = p.l1Sensitivity / (Math.sqrt(p.survivors) * p.siteSigma);
  const d = p.dim;
  return Math.min((alpha / 2) * s2 * s2 + tau * d, (alpha / 2) * (s2 * s2 + 2 * s1 * tau + tau * tau * d), (alpha / 2) * (s2 + Math.sqrt(d) * tau) ** 2);
}

/** The ledger event of one distributed-DP round with `survivors` sites in the sum. */
export function ddgEvent(label: string, params: DistributedDpParams, survivors: number, dim: number): PrivacyEvent {
  return { mechanism: 'distributed-discrete-gaussian', label, l2Sensitivity: params.l2Sensitivity, l1Sensitivity: params.l1Sensitivity, siteSigma: params.siteSigma, survivors, dim, steps: 1 };
}

/** Adds this site's N_Z(0, sigma^2) share to every coordinate of a quantized vector, mod 2^32 (in place). */
export function addDiscreteGaussianShare(quantized: Uint32Array, siteSigma: number, src: NoiseSource): void {
  const noise = new Float64Array(quantized.length);
  fillDiscreteGaussian(noise, siteSigma, src);
  for (let i = 0; i < quantized.length; i++) quantized[i] = (quantized[i] + noise[i]) >>> 0;
}

/**
 * Headroom check: the decoded sum must not wrap around 2^31. With n sites each contributing at most L per
 * coordinate and noise of total std s, require n L + k s <= 2^31 - 1 with k = 8 (a wrap then needs an 8-sigma
 * excursion on some coordinate: probability below 1e-15 per coordinate).
 */
export function checkNoiseHeadroom(level: number, sites: number, siteSigma: number): void {
  const s = Math.sqrt(sites) * siteSigma;
  if (sites * level + 8 * s > 2 ** 31 - 1) {
    throw new PrivacyError('bad-argument', `the noised secure sum could wrap around 2^32 (${sites} x ${level} + 8 x ${s.toFixed(0)} > 2^31-1): lower scaleBits`);
  }
}
