/**
 * Latent-feature typicality: how typical a model's features before the 1x1 classifier are of the source class it
 * predicts, under the per-class Gaussians of the source statistics package (source-stats.ts: the moments over
 * confident correct source pixels, Stan & Rostami, MedIA 2024, sec. 3.2; the moments over all pixels labelled c when
 * too few were confident). A pixel's score is its squared Mahalanobis distance to the Gaussian of its predicted class,
 * d² = (z - μ_c)ᵀ Σ_c⁻¹ (z - μ_c) (Lee et al., NeurIPS 2018, eq. 2, with class-conditional rather than tied
 * covariances), divided by the latent size d so that a typical source pixel scores about 1 (E[d²] = d). A harmful
 * adaptation can put features on the right side of the classifier's hyperplanes (confident, stable, in proportion)
 * while leaving the region the source features of that class occupied; this measures that.
 * Per predicted class: the mean of d²/d and the fraction of pixels beyond the chi-square 99% quantile with d degrees of
 * freedom (Wilson & Hilferty 1931 approximation). None reads a label.
 */
import type { SourceStats } from '../../protocol/contracts/index.ts';
import { gaussianFromMoments } from './gaussian.ts';

/** One source class's Gaussian, ready for distances: mean and lower Cholesky factor of the covariance. */
interface ClassGaussian {
  readonly mean: Float64Array;
  readonly chol: Float64Array;
}

/** Per predicted class: mean d²/d and fraction beyond the chi-square 99% quantile (NaN where the class is not predicted). */
export interface LatentTypicality {
  readonly meanDistance: number[];
  readonly atypicalFraction: number[];
  /**
   * Fraction of the pixels predicted as c whose features the source Gaussians also assign to c (highest likelihood,
   * equal priors): the generative reading agrees with the network's classifier (cf. the prototype agreement of DPL,
   * Chen et al., MICCAI 2021, sec. 2.2).
   */
  readonly gaussianAgreement: number[];
}

/**
 * The source Gaussians of a package, one per class (null where the moments give no positive-definite covariance, e.g. a
 * class with fewer than d + 1 pixels, or a DP package whose noise made the covariance indefinite: that class is skipped).
 */
export function sourceClassGaussians(stats: SourceStats): (ClassGaussian | null)[] {
  const d = stats.latentDim;
  return stats.classes.map((c) => {
    const m = c.confident.count > d ? c.confident : c.labelled;
    if (!(m.count > d)) return null;
    try {
      const g = gaussianFromMoments(m, d);
      return g.chol.every(Number.isFinite) ? { mean: g.mean, chol: g.chol } : null;
    } catch {
      return null;
    }
  });
}

/** Chi-square quantile with k degrees of freedom at standard-normal quantile z (Wilson & Hilferty 1931). */
export function chiSquareQuantile(k: number, z = 2.3263): number {
  const a = 2 / (9 * k);
  return k * (1 - a + z * Math.sqrt(a)) ** 3;
}

/** Accumulates per-class distances batch by batch (`add`), then `result()`. */
export class TypicalityAccumulator {
  private readonly sum: Float64Array;
  private readonly beyond: Float64Array;
  private readonly count: Float64Array;
  private readonly agree: Float64Array;
  private readonly halfLogDet: Float64Array;
  private readonly cut: number;
  private readonly y: Float64Array;

  constructor(
    private readonly gaussians: readonly (ClassGaussian | null)[],
    private readonly dim: number,
  ) {
    const k = gaussians.length;
    this.sum = new Float64Array(k);
    this.beyond = new Float64Array(k);
    this.count = new Float64Array(k);
    this.agree = new Float64Array(k);
    // log |Σ|^(1/2) = Σ log L_aa.
    this.halfLogDet = Float64Array.from(gaussians, (g) => (g ? Array.from({ length: dim }, (_, a) => Math.log(g.chol[a * dim + a])).reduce((x, y) => x + y, 0) : 0));
    this.cut = chiSquareQuantile(dim);
    this.y = new Float64Array(dim);
  }

  /** `latent`: [n, d] row-major features; `pred`: the n predicted classes. */
  add(latent: ArrayLike<number>, pred: ArrayLike<number>): void {
    const d = this.dim;
    const k = this.gaussians.length;
    for (let i = 0; i < pred.length; i++) {
      const c = pred[i];
      if (!this.gaussians[c]) continue;
      // The generative (QDA) reading of the same features: the source class of highest Gaussian log-likelihood.
      let best = -1;
      let bestLl = -Infinity;
      let d2c = NaN;
      for (let j = 0; j < k; j++) {
        const g = this.gaussians[j];
        if (!g) continue;
        const d2 = this.mahalanobis2(g, latent, i * d);
        if (j === c) d2c = d2;
        const ll = -0.5 * d2 - this.halfLogDet[j];
        if (ll > bestLl) {
          bestLl = ll;
          best = j;
        }
      }
      this.sum[c] += d2c / d;
      if (d2c > this.cut) this.beyond[c]++;
      if (best === c) this.agree[c]++;
      this.count[c]++;
    }
  }

  /** (z - μ)ᵀ Σ⁻¹ (z - μ) by forward substitution L y = z - μ. */
  private mahalanobis2(g: ClassGaussian, latent: ArrayLike<number>, off: number): number {
    const d = this.dim;
    const y = this.y;
    let d2 = 0;
    for (let a = 0; a < d; a++) {
      let s = latent[off + a] - g.mean[a];
      const row = a * d;
      for (let b = 0; b < a; b++) s -= g.chol[row + b] * y[b];
      y[a] = s / g.chol[row + a];
      d2 += y[a] * y[a];
    }
    return d2;
  }

  result(): LatentTypicality {
    const per = (v: Float64Array): number[] => Array.from(v, (x, c) => (this.count[c] > 0 ? x / this.count[c] : NaN));
    return { meanDistance: per(this.sum), atypicalFraction: per(this.beyond), gaussianAgreement: per(this.agree) };
  }
}

/** Mean over the classes that have a value (NaN when none has). */
export function classMean(v: readonly number[] | undefined): number {
  const f = (v ?? []).filter(Number.isFinite);
  return f.length === 0 ? NaN : f.reduce((a, b) => a + b, 0) / f.length;
}

/** Mean over pixels: the per-class values weighted by the predicted class proportions (classes without a value skipped). */
export function pixelMean(v: readonly number[] | undefined, proportions: readonly number[] | undefined): number {
  if (!v || !proportions) return NaN;
  let s = 0;
  let w = 0;
  v.forEach((x, c) => {
    if (Number.isFinite(x) && proportions[c] > 0) {
      s += x * proportions[c];
      w += proportions[c];
    }
  });
  return w > 0 ? s / w : NaN;
}

/** One line for logs: `latent: distance <class mean> (pixels <pixel mean>), atypical <class mean> (pixels <pixel mean>)`. */
export function formatTypicality(t: LatentTypicality, proportions?: readonly number[]): string {
  const f = (v: number[], digits: number): string => `${classMean(v).toFixed(digits)} (pixels ${pixelMean(v, proportions).toFixed(digits)})`;
  return `latent: distance ${f(t.meanDistance, 3)}, atypical ${f(t.atypicalFraction, 4)}, agreement ${f(t.gaussianAgreement, 4)}`;
}
