/**
 * Adaptive clipping (Andrew, Thakkar, McMahan, Ramaswamy, "Differentially Private Learning with Adaptive
 * Clipping", NeurIPS 2021, arXiv 1905.03871): the clipping norm C tracks a target quantile gamma of the update
 * norms by a geometric update on a noised count of unclipped updates.
 *
 *   b_bar = (sum_i 1[||Delta_i|| <= C] + N(0, sigma_b^2)) / m                       (Sec. 3, private quantile estimate)
 *   C <- C * exp(-eta_C * (b_bar - gamma))                                           (Sec. 2.2, geometric update)
 * Both the update sum (sensitivity C, noise z_Delta * C) and the count (sensitivity 1/2 after centring b - 1/2,
 * noise sigma_b) are released, so the update's multiplier is raised to keep their composition at the requested z:
 *   z_Delta = (z^-2 - (2 sigma_b)^-2)^(-1/2)                                         (Sec. 3.1, Theorem 1)
 * Defaults as Flower's DifferentialPrivacy*AdaptiveClipping: C_0 = 0.1, gamma = 0.5, eta_C = 0.2, sigma_b = m / 20.
 */
import { gaussian } from './gaussian-noise.ts';
import type { NoiseSource } from './noise-source.ts';
import { PrivacyError } from './privacy-error.ts';

export interface AdaptiveClippingConfig {
  readonly initialClip?: number;
  readonly targetQuantile?: number;
  readonly clipLearningRate?: number;
  /** Std of the noise on the count of unclipped updates; default m / 20 (Andrew et al. Sec. 3.1). */
  readonly countStddev?: number;
}

export const ADAPTIVE_CLIPPING_DEFAULTS = { initialClip: 0.1, targetQuantile: 0.5, clipLearningRate: 0.2 } as const;

export interface AdaptiveNoise {
  /** Multiplier for the update noise (std = updateMultiplier * C on the sum). */
  readonly updateMultiplier: number;
  readonly countStddev: number;
}

/** Splits the requested multiplier z between the update sum and the clipped count (Andrew et al., Thm 1). */
export function adaptiveNoiseSplit(noiseMultiplier: number, sitesPerRound: number, countStddev?: number): AdaptiveNoise {
  if (!(noiseMultiplier >= 0)) throw new PrivacyError('bad-argument', `noise multiplier must be >= 0, got ${noiseMultiplier}`);
  if (!Number.isInteger(sitesPerRound) || sitesPerRound < 1) throw new PrivacyError('bad-argument', `sites per round must be an integer >= 1, got ${sitesPerRound}`);
  const sb = countStddev ?? sitesPerRound / 20;
  if (!(sb >= 0)) throw new PrivacyError('bad-argument', `count stddev must be >= 0, got ${countStddev}`);
  if (noiseMultiplier === 0) return { updateMultiplier: 0, countStddev: sb };
  if (noiseMultiplier >= 2 * sb) {
    throw new PrivacyError(
      'bad-argument',
      `adaptive clipping needs noise multiplier ${noiseMultiplier} < 2 x count stddev (${2 * sb}); with ${sitesPerRound} sites per round ` +
        `the default count stddev m/20 = ${sitesPerRound / 20} is too small: set countStddev > ${noiseMultiplier / 2} (a noisier quantile) or use fixed clipping`,
    );
  }
  return { updateMultiplier: (noiseMultiplier ** -2 - (2 * sb) ** -2) ** -0.5, countStddev: sb };
}

/** The next clipping norm from this round's unclipped count (Andrew et al., Sec. 2.2 and 3). */
export function nextClipNorm(
  clip: number,
  unclippedCount: number,
  sites: number,
  cfg: { targetQuantile: number; clipLearningRate: number; countStddev: number },
  src: NoiseSource,
): number {
  const noisyFraction = (unclippedCount + gaussian(cfg.countStddev, src)) / sites;
  return clip * Math.exp(-cfg.clipLearningRate * (noisyFraction - cfg.targetQuantile));
}
