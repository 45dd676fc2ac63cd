/**
 * The privacy-relevant core of one DP-SGD step (Abadi et al., CCS 2016, Alg. 1, lines "Clip gradient" and "Add
 * noise"), on plain typed arrays so that it can be checked against gradients computed by hand:
 *   g~ = ( sum_i g_i * min(1, C / ||g_i||_2)  +  N(0, sigma^2 C^2 I) ) / L
 * with ||g_i|| taken over ALL of example i's parameter gradients together, the sum over the step's Poisson sample
 * and L = qN the expected batch size (Opacus divides by the expected, not the realised, batch size under Poisson
 * sampling: the realised size depends on the data and would leak). Accumulated in float64, so each clipped
 * contribution has norm <= C up to float64 rounding. Noise from a ChaCha20 stream (noise-source.ts).
 */
import { l2Norm, type Vector } from './clipping.ts';
import { fillGaussian } from './gaussian-noise.ts';
import type { NoiseSource } from './noise-source.ts';
import { PrivacyError } from './privacy-error.ts';

/** Accumulates clipped per-example gradients of one step, then releases their noised mean once. */
export class DpGradientAccumulator {
  private readonly sums: Float64Array[];
  private examples = 0;
  private clippedCount = 0;
  private released = false;

  /** `lengths`: the parameter tensors' sizes, in the order the per-example gradients will come. */
  constructor(
    readonly lengths: readonly number[],
    readonly clip: number,
  ) {
    if (!(clip > 0) || !Number.isFinite(clip)) throw new PrivacyError('bad-argument', `DP-SGD clipping norm must be > 0, got ${clip}`);
    this.sums = lengths.map((n) => new Float64Array(n));
  }

  /** Adds one example's gradient clipped to norm C; returns its norm before clipping. */
  add(grads: readonly Vector[]): number {
    if (this.released) throw new PrivacyError('bad-argument', 'this step was already released');
    if (grads.length !== this.sums.length || grads.some((g, k) => g.length !== this.lengths[k])) {
      throw new PrivacyError('bad-argument', 'a per-example gradient does not match the parameter layout');
    }
    const norm = l2Norm(grads);
    if (!Number.isFinite(norm)) throw new PrivacyError('numerical', 'a per-example gradient holds a non-finite value');
    const factor = norm > this.clip ? this.clip / norm : 1;
    if (factor < 1) this.clippedCount++;
    grads.forEach((g, k) => {
      const s = this.sums[k];
      for (let i = 0; i < s.length; i++) s[i] += g[i] * factor;
    });
    this.examples++;
    return norm;
  }

  get count(): number {
    return this.examples;
  }

  get clipped(): number {
    return this.clippedCount;
  }

  /** The sum of the clipped gradients so far (a copy; for tests and diagnostics, never released). */
  clippedSum(): Float64Array[] {
    return this.sums.map((s) => new Float64Array(s));
  }

  /**
   * The noised mean gradient (sum + N(0, (noiseMultiplier * C)^2)) / expectedBatchSize, once. Noise is drawn tensor
   * by tensor in layout order from `noise`.
   */
  release(noiseMultiplier: number, expectedBatchSize: number, noise: NoiseSource): Float64Array[] {
    if (this.released) throw new PrivacyError('bad-argument', 'this step was already released');
    if (!(noiseMultiplier >= 0) || !Number.isFinite(noiseMultiplier)) throw new PrivacyError('bad-argument', `noise multiplier must be >= 0, got ${noiseMultiplier}`);
    if (!(expectedBatchSize > 0)) throw new PrivacyError('bad-argument', `expected batch size must be > 0, got ${expectedBatchSize}`);
    this.released = true;
    const std = noiseMultiplier * this.clip;
    return this.sums.map((s) => {
      const out = new Float64Array(s.length);
      fillGaussian(out, std, noise);
      for (let i = 0; i < out.length; i++) out[i] = (out[i] + s[i]) / expectedBatchSize;
      return out;
    });
  }
}

/** The step's Poisson sample: each of `n` indices independently with probability q (Opacus UniformWithReplacementSampler). */
export function poissonSample(n: number, q: number, src: NoiseSource): number[] {
  if (!(q > 0 && q <= 1)) throw new PrivacyError('bad-argument', `sampling rate must be in (0, 1], got ${q}`);
  const out: number[] = [];
  for (let i = 0; i < n; i++) if (src.nextDouble() < q) out.push(i);
  return out;
}
