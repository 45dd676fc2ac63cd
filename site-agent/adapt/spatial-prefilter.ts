/**
 * The input adapter's optional spatial pre-filter: an isotropic in-plane Gaussian smoothing applied to every target
 * slice BEFORE the intensity curve (intensity-curve.ts), so that the adapted model sees g(G_σ * x). It exists for
 * noisy, low-field scanners: a pixel-wise curve cannot remove noise, and additive noise inflates the variances of the
 * network's early feature maps far beyond the source's stored batch-norm statistics; smoothing lowers them again.
 * Low-pass filtering of the target image as a label-free input-space adaptation follows VPTTA (Chen et al., "Each
 * test image deserves a specific prompt", CVPR 2024: the prompt acts on the low-frequency part of the image) and
 * FSM (Yang et al., MedIA 2022: the source style lives in the low frequencies); σ is chosen per target by the same
 * source-BN-statistics objective as the curve (adapter-denoise.ts, `DenoiseOptions`).
 *
 * Kernel: w_i = exp(-i² / 2σ²) / Σ_j exp(-j² / 2σ²), |i| <= ceil(3σ), applied along rows then columns (separable),
 * replicate padding at the borders; σ in pixels. σ = 0 is "no filter" and is never stored.
 */
import { z } from 'zod';
import { gaussianBlur2d } from '../data/index.ts';
import { AdaptError } from './adapt-error.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

/** Largest σ accepted (pixels): beyond it the filter erases the anatomy of any image this code base handles. */
export const MAX_PREFILTER_SIGMA = 8;

export const SpatialPrefilterSchema = z
  .object({
    kind: z.literal('gaussian'),
    /** Standard deviation of the Gaussian kernel, in pixels (> 0). */
    sigma: z.number().finite().positive().max(MAX_PREFILTER_SIGMA),
  })
  .strict();

export type SpatialPrefilter = z.infer<typeof SpatialPrefilterSchema>;

/** G_σ * x for each of the n slices of h x w (1 channel) in `images`; a new array. */
export function gaussianFilterSlices(images: Float32Array, n: number, h: number, w: number, sigma: number): Float32Array {
  if (images.length !== n * h * w) throw new AdaptError('BAD_SHAPE', `pre-filter: expected n*h*w = ${n * h * w} values, got ${images.length}`);
  if (!(sigma >= 0) || sigma > MAX_PREFILTER_SIGMA) throw new AdaptError('BAD_OPTION', `pre-filter sigma must be in [0, ${MAX_PREFILTER_SIGMA}] pixels, got ${sigma}`);
  const out = new Float32Array(images);
  if (sigma === 0) return out;
  const px = h * w;
  for (let o = 0; o < n * px; o += px) gaussianBlur2d(out.subarray(o, o + px), h, w, sigma);
  return out;
}

/** The target seen through the pre-filter (same slices, case ids and spacing). */
export function applyPrefilter(p: SpatialPrefilter, target: UnlabeledSlices): UnlabeledSlices {
  if (target.channels !== 1) throw new AdaptError('BAD_SHAPE', `a spatial pre-filter applies to 1-channel images, got ${target.channels} channels`);
  switch (p.kind) {
    case 'gaussian':
      return { ...target, images: gaussianFilterSlices(target.images, target.n, target.height, target.width, p.sigma) };
    default: {
      const never: never = p.kind;
      throw new AdaptError('BAD_OPTION', `unknown pre-filter kind '${String(never)}'`);
    }
  }
}
