/**
 * The non-IID report of a federation without revealing any site's label distribution.
 *
 * Each site i sends, through a secure statistics round (masked sums: the coordinator learns only sums over sites):
 *   hist/pixels = pixels_i * scale   labelled training pixels per class, scaled by a public 1 / (pixel bound)
 *   hist/p      = p_i                its class distribution, p_ik = pixels_ik / sum_k pixels_ik
 *   hist/p2     = p_i * p_i          element-wise squares
 *   hist/sites  = [1]
 * Every entry lies in [0, 1], so the round runs with clip 1 and the finest safe fixed-point step.
 * From the sums the coordinator forms the pooled class frequencies, the mean site distribution
 * pbar_k = (1/n) sum_i p_ik, and the between-site variance per class Var_k = (1/n) sum_i p_ik^2 - pbar_k^2
 * (a second moment, computable from sums alone). The heterogeneity index H = sum_k Var_k is the mean squared L2
 * distance of the sites' class distributions from their mean: 0 for IID label proportions. These are the first
 * two moments of the sites' distributions; no individual p_i can be recovered from them for n >= 3
 * (only sums are revealed, SECURITY.md). No tfjs here: the coordinator uses it.
 */
import { ProtocolError } from './errors.ts';

export const CLASS_HISTOGRAM_REQUEST = 'class-histogram';

export interface ClassHistogramReport {
  kind: 'fedsfda-class-histogram';
  version: 1;
  numSites: number;
  numClasses: number;
  /** Labelled training pixels per class over all included sites. */
  pooledPixels: number[];
  /** pooledPixels normalized to sum 1. */
  pooledFraction: number[];
  /** pbar_k: the unweighted mean over sites of each site's class fraction. */
  meanSiteFraction: number[];
  /** sqrt(Var_k): the between-site standard deviation of each class fraction. */
  betweenSiteStd: number[];
  /**
   * sqrt(Var_k) / pbar_k: the spread relative to the class's mean share (0 when the class is absent everywhere).
   * Small structures have small pixel shares, so label skew shows here rather than in `heterogeneity`.
   */
  betweenSiteCv: number[];
  /** H = sum_k Var_k, the mean squared L2 distance of site class distributions from their mean (0 = IID). */
  heterogeneity: number;
}

/** One site's named vectors from its per-class pixel counts. */
export function classHistogramToVectors(pixels: readonly number[], scale: number): Record<string, Float32Array> {
  if (!(scale > 0 && Number.isFinite(scale))) throw new ProtocolError('malformed', `class-histogram scale must be > 0, got ${scale}`);
  if (pixels.length < 1 || pixels.some((p) => !Number.isFinite(p) || p < 0)) {
    throw new ProtocolError('malformed', 'class histogram must be non-negative finite counts');
  }
  const total = pixels.reduce((a, b) => a + b, 0);
  if (total <= 0) throw new ProtocolError('malformed', 'class histogram is empty (no labelled pixels)');
  if (total * scale > 1) throw new ProtocolError('malformed', `${total} pixels exceed the public bound 1/scale = ${1 / scale}`);
  const p = pixels.map((x) => x / total);
  return {
    'hist/pixels': Float32Array.from(pixels, (x) => x * scale),
    'hist/p': Float32Array.from(p),
    'hist/p2': Float32Array.from(p, (x) => x * x),
    'hist/sites': Float32Array.of(1),
  };
}

/** The report from summed vectors over `numSites` included sites. */
export function classHistogramFromVectors(sums: Record<string, Float32Array>, meta: { numSites: number; scale: number }): ClassHistogramReport {
  const get = (name: string): Float32Array => {
    const x = sums[name];
    if (!x) throw new ProtocolError('malformed', `class-histogram sums lack "${name}"`);
    return x;
  };
  const pix = get('hist/pixels');
  const p = get('hist/p');
  const p2 = get('hist/p2');
  const k = pix.length;
  if (p.length !== k || p2.length !== k) throw new ProtocolError('malformed', `class-histogram vectors disagree on the number of classes`);
  const n = meta.numSites;
  const sites = get('hist/sites')[0];
  // Each site adds exactly 1: a different count means the sum is not over the sites the coordinator believes.
  if (!(n >= 1) || Math.abs(sites - n) > 1e-3) throw new ProtocolError('malformed', `class-histogram sum covers ${sites} sites, expected ${n}`);
  const pooledPixels = Array.from(pix, (x) => Math.max(0, Math.round(x / meta.scale)));
  const meanSiteFraction = Array.from(p, (x) => x / n);
  const variance = meanSiteFraction.map((m, c) => Math.max(0, p2[c] / n - m * m)); // >= 0 up to quantization error
  return report(n, pooledPixels, meanSiteFraction, variance);
}

function report(numSites: number, pooledPixels: number[], meanSiteFraction: number[], variance: number[]): ClassHistogramReport {
  const total = pooledPixels.reduce((a, b) => a + b, 0);
  return {
    kind: 'fedsfda-class-histogram',
    version: 1,
    numSites,
    numClasses: pooledPixels.length,
    pooledPixels,
    pooledFraction: pooledPixels.map((x) => (total > 0 ? x / total : 0)),
    meanSiteFraction,
    betweenSiteStd: variance.map(Math.sqrt),
    betweenSiteCv: variance.map((v, k) => (meanSiteFraction[k] > 0 ? Math.sqrt(v) / meanSiteFraction[k] : 0)),
    heterogeneity: variance.reduce((a, b) => a + b, 0),
  };
}

/** The same report computed in the clear from every site's histogram (for simulations and tests: the truth). */
export function classHistogramReportInClear(perSite: readonly (readonly number[])[]): ClassHistogramReport {
  const k = perSite[0]?.length ?? 0;
  const n = perSite.length;
  const pooledPixels = Array.from({ length: k }, (_, c) => perSite.reduce((a, s) => a + s[c], 0));
  const fractions = perSite.map((s) => {
    const t = s.reduce((a, b) => a + b, 0);
    return s.map((x) => x / t);
  });
  const meanSiteFraction = Array.from({ length: k }, (_, c) => fractions.reduce((a, f) => a + f[c], 0) / n);
  const variance = meanSiteFraction.map((m, c) => fractions.reduce((a, f) => a + (f[c] - m) ** 2, 0) / n);
  return report(n, pooledPixels, meanSiteFraction, variance);
}
