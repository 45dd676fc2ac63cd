/**
 * Per-unit contributions of the two shared statistics, normalised so that one privacy unit (a case or a slice,
 * dp-statistics.ts) has a public L2 bound Delta, and the coordinator's way back to a usable package.
 *
 * Source statistics (protocol/contracts/source-stats.ts), unit j with P_j pixels, latent features clipped per pixel to
 * ||z|| <= B and per-channel batch-norm input means clamped to |m| <= A (mean squares to <= A^2):
 *   bn/l/count = 1 / sqrt(L),  bn/l/sum = m / (A sqrt(C_l L)),  bn/l/sumSq = E[x^2] / (A^2 sqrt(C_l L))   (C_l channels)
 *   class/k/labelCount = f_k = n_k / P_j,  class/k/{labelled,confident}/count = n / P_j,
 *   .../sum = sum z / (P_j B),   .../sumOuter = sum z z^T / (P_j B^2)
 * Bound: each of the L BN layers contributes at most (1 + 1 + 1) / L to the squared norm (the 1/sqrt(L) weight gives
 * the whole BN block the share of one layer, so that the latent moments GMM+SWD needs are not drowned by the noise a
 * deep network's many BN channels would otherwise call for); class k at most 4 f_k^2 (labelled: count, labelCount,
 * ||sum z|| / (P_j B) <= f_k, ||sum zz^T||_F / (P_j B^2) <= f_k) plus 3 g_k^2 <= 3 f_k^2 (confident pixels are a
 * subset); sum_k f_k^2 <= (sum_k f_k)^2 = 1. So Delta^2 = 3 + 7 = 10, whatever the depth.
 * Every entry is a sufficient statistic divided by the unit's own pixel count, so each unit has weight 1 and the
 * pooled package is a per-unit-weighted one; the coordinator multiplies each name back by its public unit
 * (P0 k_name, P0 = nominal pixels per unit) and gets "pixel-equivalent" counts, sums and outer products.
 *
 * Class histogram (protocol/class-histogram-vectors.ts): hist/pixels = the unit's class fractions f (||f|| <= 1),
 * plus the site-level hist/p and hist/p2 (the site's class distribution and its squares: one unit changes each by at
 * most sqrt(2) in L2, both being in the simplex resp. having sum of squares <= 1), hist/sites = 1 (not data: no
 * noise). Delta^2 = 1 + 2 + 2 = 5.
 *
 * Post-processing of the noised package (free: Dwork & Roth 2014, Prop. 2.1): counts rounded and floored at 0, a
 * class moment with fewer than 2 pixel equivalents dropped, each covariance projected onto the positive
 * semi-definite cone (eigenvalues floored), batch-norm variances floored at 1e-3.
 */
import type { SourceStats } from '../contracts/index.ts';
import { PrivacyError } from './privacy-error.ts';

export interface SourceStatsClips {
  /** B: latent feature L2 bound (features are clipped to it when the unit's moments are computed). */
  readonly featureClip: number;
  /** A: bound on a unit's per-channel mean batch-norm input. */
  readonly activationClip: number;
}

/** Delta of one unit's source-statistics vector (sqrt(3 + 7) with BN layers, sqrt(7) without). */
export function sourceStatsUnitBound(bnLayers: number): number {
  return Math.sqrt((bnLayers > 0 ? 3 : 0) + 7);
}

/** Delta of one unit's class-histogram contribution (per-unit fractions plus the site-level p and p^2). */
export const CLASS_HISTOGRAM_UNIT_BOUND = Math.sqrt(5);

/** The divisor k_name (besides the unit's pixels) of each named source-statistics vector; L = `bnLayers`. */
export function sourceStatsNameUnit(name: string, length: number, clips: SourceStatsClips, bnLayers: number): number {
  const { featureClip: b, activationClip: a } = clips;
  const l = Math.sqrt(Math.max(1, bnLayers));
  if (/^bn\/.+\/count$/.test(name)) return l;
  if (/^bn\/.+\/sum$/.test(name)) return a * Math.sqrt(length) * l;
  if (/^bn\/.+\/sumSq$/.test(name)) return a * a * Math.sqrt(length) * l;
  if (/\/sumOuter$/.test(name)) return b * b;
  if (/^class\/\d+\/(confident|labelled)\/sum$/.test(name)) return b;
  if (/\/count$/.test(name) || /\/labelCount$/.test(name)) return 1;
  throw new PrivacyError('bad-argument', `no DP unit for source statistic "${name}"`);
}

/**
 * One unit's normalised source-statistics vector from its own package (computed with latent features already
 * clipped to B) and its pixel count. Batch-norm means and mean squares are clamped to the bound A here.
 */
export function sourceStatsUnitVector(stats: SourceStats, pixels: number, clips: SourceStatsClips): Record<string, Float64Array> {
  if (!(pixels > 0)) throw new PrivacyError('bad-argument', `a unit needs pixels > 0, got ${pixels}`);
  const a = clips.activationClip;
  const out: Record<string, Float64Array> = {};
  const l = Math.sqrt(Math.max(1, Object.keys(stats.bn).length));
  for (const [layer, m] of Object.entries(stats.bn)) {
    const c = m.sum.length;
    const unit = Math.sqrt(c) * l;
    const sum = new Float64Array(c);
    const sumSq = new Float64Array(c);
    for (let k = 0; k < c; k++) {
      const mean = Math.max(-a, Math.min(a, m.count > 0 ? m.sum[k] / m.count : 0));
      const meanSq = Math.max(mean * mean, Math.min(a * a, m.count > 0 ? m.sumSq[k] / m.count : 0));
      sum[k] = mean / (a * unit);
      sumSq[k] = meanSq / (a * a * unit);
    }
    out[`bn/${layer}/count`] = Float64Array.of(m.count > 0 ? 1 / l : 0);
    out[`bn/${layer}/sum`] = sum;
    out[`bn/${layer}/sumSq`] = sumSq;
  }
  const b = clips.featureClip;
  stats.classes.forEach((cls, k) => {
    out[`class/${k}/labelCount`] = Float64Array.of(cls.labelCount / pixels);
    for (const part of ['confident', 'labelled'] as const) {
      const m = cls[part];
      out[`class/${k}/${part}/count`] = Float64Array.of(m.count / pixels);
      out[`class/${k}/${part}/sum`] = Float64Array.from(m.sum, (x) => x / (pixels * b));
      out[`class/${k}/${part}/sumOuter`] = Float64Array.from(m.sumOuter, (x) => x / (pixels * b * b));
    }
  });
  return out;
}

/** One unit's class-histogram part: its class fractions (hist/pixels). */
export function classHistogramUnitVector(pixelsPerClass: readonly number[]): Record<string, Float64Array> {
  const total = pixelsPerClass.reduce((s, x) => s + x, 0);
  if (!(total > 0)) throw new PrivacyError('bad-argument', 'a unit without labelled pixels');
  return { 'hist/pixels': Float64Array.from(pixelsPerClass, (x) => x / total) };
}

/** Which named vectors of a DP statistic carry noise (hist/sites is the public count of sites in the sum). */
export function isNoisedStatistic(name: string): boolean {
  return name !== 'hist/sites';
}

/** The unit bound Delta of a DP statistic, from its named vectors (class histogram or source statistics). */
export function statisticsUnitBound(names: readonly string[]): number {
  if (names.includes('hist/pixels')) return CLASS_HISTOGRAM_UNIT_BOUND;
  const bnLayers = names.filter((n) => /^bn\/.+\/count$/.test(n)).length;
  if (bnLayers > 0 || names.some((n) => n.startsWith('class/'))) return sourceStatsUnitBound(bnLayers);
  throw new PrivacyError('bad-argument', 'no differentially private form of these statistics');
}

/** The site's scale: every coordinate of U clipped units (norm <= Delta each) times it lies in [-1, 1]. */
export function statisticsScale(bound: number, maxUnits: number): number {
  return 1 / (bound * maxUnits);
}

/** Symmetric eigen-decomposition (cyclic Jacobi; Golub & Van Loan, Matrix Computations, sec. 8.5). */
export function symmetricEigen(a: Float64Array, d: number): { values: Float64Array; vectors: Float64Array } {
  const m = Float64Array.from(a);
  const v = new Float64Array(d * d);
  for (let i = 0; i < d; i++) v[i * d + i] = 1;
  for (let sweep = 0; sweep < 100; sweep++) {
    let off = 0;
    for (let p = 0; p < d; p++) for (let q = p + 1; q < d; q++) off += m[p * d + q] ** 2;
    if (off < 1e-30) break;
    for (let p = 0; p < d; p++) {
      for (let q = p + 1; q < d; q++) {
        const apq = m[p * d + q];
        if (Math.abs(apq) < 1e-300) continue;
        const theta = (m[q * d + q] - m[p * d + p]) / (2 * apq);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1);
        const s = t * c;
        for (let k = 0; k < d; k++) {
          const mkp = m[k * d + p];
          const mkq = m[k * d + q];
          m[k * d + p] = c * mkp - s * mkq;
          m[k * d + q] = s * mkp + c * mkq;
        }
        for (let k = 0; k < d; k++) {
          const mpk = m[p * d + k];
          const mqk = m[q * d + k];
          m[p * d + k] = c * mpk - s * mqk;
          m[q * d + k] = s * mpk + c * mqk;
        }
        for (let k = 0; k < d; k++) {
          const vkp = v[k * d + p];
          const vkq = v[k * d + q];
          v[k * d + p] = c * vkp - s * vkq;
          v[k * d + q] = s * vkp + c * vkq;
        }
      }
    }
  }
  return { values: Float64Array.from({ length: d }, (_, i) => m[i * d + i]), vectors: v };
}

/** Covariance floor of the PSD projection, relative to the largest eigenvalue (absolute 1e-6 at least). */
const EIGEN_FLOOR = 1e-3;

/** Noised moments -> moments of a valid Gaussian (or nothing when fewer than 2 pixel equivalents remain). */
function projectMoments(m: { count: number; sum: number[]; sumOuter: number[] }, d: number): { count: number; sum: number[]; sumOuter: number[] } {
  if (m.count < 2) return { count: 0, sum: new Array<number>(d).fill(0), sumOuter: new Array<number>(d * d).fill(0) };
  const n = m.count;
  const mean = m.sum.map((x) => x / n);
  const cov = new Float64Array(d * d);
  for (let i = 0; i < d; i++) for (let j = 0; j < d; j++) cov[i * d + j] = (m.sumOuter[i * d + j] + m.sumOuter[j * d + i]) / (2 * n) - mean[i] * mean[j];
  const { values, vectors } = symmetricEigen(cov, d);
  const floor = Math.max(1e-6, EIGEN_FLOOR * Math.max(...values));
  const sumOuter = new Array<number>(d * d).fill(0);
  for (let i = 0; i < d; i++) {
    for (let j = 0; j < d; j++) {
      let c = 0;
      for (let k = 0; k < d; k++) c += vectors[i * d + k] * Math.max(floor, values[k]) * vectors[j * d + k];
      sumOuter[i * d + j] = n * (c + mean[i] * mean[j]);
    }
  }
  return { count: n, sum: [...m.sum], sumOuter };
}

/** Noised source-statistics sums (scaled units) -> pixel-equivalent sums: each name times P0 k_name / s. */
export function unscaleSourceStatsSums(sums: Record<string, Float32Array>, meta: { scale: number; unitPixels: number; clips: SourceStatsClips }): Record<string, Float32Array> {
  const real: Record<string, Float32Array> = {};
  const bnLayers = Object.keys(sums).filter((n) => /^bn\/.+\/count$/.test(n)).length;
  for (const [name, v] of Object.entries(sums)) {
    const f = (meta.unitPixels * sourceStatsNameUnit(name, v.length, meta.clips, bnLayers)) / meta.scale;
    real[name] = Float32Array.from(v, (x) => x * f);
  }
  return real;
}

/** The post-processing of a noised package (file comment): a package every adaptation method can use. */
export function postProcessDpSourceStats(raw: SourceStats): SourceStats {
  const d = raw.latentDim;
  const bn: SourceStats['bn'] = {};
  for (const [layer, m] of Object.entries(raw.bn)) {
    const count = Math.max(1, m.count);
    const sumSq = m.sumSq.map((s, k) => {
      const mean = m.sum[k] / count;
      return count * (mean * mean + Math.max(1e-3, s / count - mean * mean));
    });
    bn[layer] = { count, sum: [...m.sum], sumSq };
  }
  const classes = raw.classes.map((c) => ({ labelCount: Math.max(0, c.labelCount), confident: projectMoments(c.confident, d), labelled: projectMoments(c.labelled, d) }));
  return { ...raw, bn, classes };
}

/** Noised class-histogram sums (scaled units) -> the sums classHistogramFromVectors reads at scale 1 (pixel equivalents). */
export function unscaleClassHistogramSums(sums: Record<string, Float32Array>, meta: { scale: number; unitPixels: number }): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(sums)) {
    if (name === 'hist/sites') out[name] = v;
    else if (name === 'hist/pixels') out[name] = Float32Array.from(v, (x) => Math.max(0, (x / meta.scale) * meta.unitPixels));
    else out[name] = Float32Array.from(v, (x) => Math.max(0, x / meta.scale));
  }
  return out;
}
