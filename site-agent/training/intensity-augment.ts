/**
 * Source-side intensity augmentation (domain randomisation) for federated training: every round a site trains on a freshly
 * augmented copy of its slices. Standard, target-agnostic intensity perturbations only — random gamma,
 * brightness/contrast, Gaussian blur and Gaussian noise (the nnU-Net style set, Isensee et al., Nat. Methods 2021,
 * suppl. "data augmentation") — and deliberately NOT contrast inversion: the source must not know the target's shift.
 * Labels are unchanged (intensity-only transforms keep the geometry).
 *
 * Optional domain randomisation on top (off unless asked for; with it off the output is bit for bit the old one):
 * - `gin`: Global Intensity Non-linear augmentation (Ouyang et al., "Causality-inspired single-source domain
 *   generalization for medical image segmentation", IEEE TMI 2022, sec. III-A): a shallow random conv net with fresh
 *   N(0,1) weights per slice maps the slice to a new "contrast", which may be non-monotone (tissue orders can swap,
 *   as between MR sequences) — a prior on *every* intensity map rather than on one the target is known to have;
 * - `gin.ipaProb`: the same paper's interventional pseudo-correlation augmentation (sec. III-B): two GIN outputs
 *   blended by a random smooth mask, i.e. a spatially varying intensity map;
 * - `biasField`: a random smooth multiplicative field (coil sensitivity), x' = lo + (x - lo) exp(s b(r)).
 * Every draw comes from the `Rng` passed in (deterministic per seed); nothing here looks at the labels.
 */
import { z } from 'zod';
import { gaussianBlur2d, type SliceDataset } from '../data/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { BiasFieldAugmentSchema, biasFieldSlice, GinSchema, ginSlice } from './random-intensity-maps.ts';

export { BiasFieldAugmentSchema, GinSchema, type BiasFieldAugmentOptions, type GinOptions } from './random-intensity-maps.ts';

export const IntensityAugmentSchema = z
  .object({
    /** Probability of each transform per slice. */
    prob: z.number().min(0).max(1).default(0.5),
    /** Gamma drawn log-uniformly in [1/gammaMax, gammaMax], applied to the slice's min-max normalised intensities. */
    gammaMax: z.number().min(1).max(4).default(1.6),
    /** Contrast factor uniform in [1 - contrast, 1 + contrast] about the slice mean. */
    contrast: z.number().min(0).max(0.9).default(0.3),
    /** Additive brightness uniform in [-brightness, brightness]. */
    brightness: z.number().min(0).max(1).default(0.15),
    /** Blur sigma (pixels) uniform in [0, blurMax]. */
    blurMax: z.number().min(0).max(4).default(1),
    /** Noise sigma uniform in [0, noiseMax]. */
    noiseMax: z.number().min(0).max(1).default(0.05),
    /** GIN (+ IPA) random-network intensity maps, applied before the transforms above; off when absent. */
    gin: GinSchema.optional(),
    /** A random smooth multiplicative bias field, applied after GIN and before the transforms above; off when absent. */
    biasField: BiasFieldAugmentSchema.optional(),
  })
  .strict();

export type IntensityAugmentOptions = z.infer<typeof IntensityAugmentSchema>;

/** Augments one h x w slice in place. */
export function augmentSlice(img: Float32Array, h: number, w: number, o: IntensityAugmentOptions, rng: Rng): void {
  const n = h * w;
  // The new transforms draw nothing from `rng` when they are off, so the set below is bit for bit the old one.
  if (o.gin !== undefined && rng.next() < o.gin.prob) ginSlice(img, h, w, o.gin, rng);
  if (o.biasField !== undefined && rng.next() < o.biasField.prob && o.biasField.strengthMax > 0) biasFieldSlice(img, h, w, o.biasField, rng);
  if (rng.next() < o.prob && o.gammaMax > 1) {
    let lo = Infinity;
    let hi = -Infinity;
    for (let i = 0; i < n; i++) {
      lo = Math.min(lo, img[i]);
      hi = Math.max(hi, img[i]);
    }
    const range = hi - lo;
    if (range > 0) {
      const g = Math.exp(rng.uniform(-Math.log(o.gammaMax), Math.log(o.gammaMax)));
      for (let i = 0; i < n; i++) img[i] = lo + range * ((img[i] - lo) / range) ** g;
    }
  }
  if (rng.next() < o.prob && (o.contrast > 0 || o.brightness > 0)) {
    let mean = 0;
    for (let i = 0; i < n; i++) mean += img[i] / n;
    const c = rng.uniform(1 - o.contrast, 1 + o.contrast);
    const b = rng.uniform(-o.brightness, o.brightness);
    for (let i = 0; i < n; i++) img[i] = mean + c * (img[i] - mean) + b;
  }
  if (rng.next() < o.prob && o.blurMax > 0) {
    const s = rng.uniform(0, o.blurMax);
    if (s > 0.05) gaussianBlur2d(img, h, w, s);
  }
  if (rng.next() < o.prob && o.noiseMax > 0) {
    const s = rng.uniform(0, o.noiseMax);
    for (let i = 0; i < n; i++) img[i] += s * rng.normal();
  }
}

/**
 * A copy of `ds` whose images are independently augmented per slice and, for multi-channel images (NHWC), per
 * channel (each MR sequence gets its own random contrast); labels and metadata are shared.
 */
export function augmentDataset(ds: SliceDataset, o: IntensityAugmentOptions, seed: number): SliceDataset {
  const rng = new Rng(seed);
  const images = new Float32Array(ds.images);
  const px = ds.height * ds.width;
  const c = ds.channels;
  if (c === 1) {
    for (let s = 0; s < ds.n; s++) augmentSlice(images.subarray(s * px, (s + 1) * px), ds.height, ds.width, o, rng);
    return { ...ds, images };
  }
  const plane = new Float32Array(px);
  for (let s = 0; s < ds.n; s++) {
    const base = s * px * c;
    for (let ch = 0; ch < c; ch++) {
      for (let i = 0; i < px; i++) plane[i] = images[base + i * c + ch];
      augmentSlice(plane, ds.height, ds.width, o, rng);
      for (let i = 0; i < px; i++) images[base + i * c + ch] = plane[i];
    }
  }
  return { ...ds, images };
}

/**
 * The per-round augmenter a site's trainer uses (UNetTrainer's `augment`): round r trains on a fresh copy drawn
 * from seed `seed * 7919 + r * 31`, so runs repeat and rounds differ.
 */
export function roundAugmenter(o: IntensityAugmentOptions, seed: number): (ds: SliceDataset, round: number) => SliceDataset {
  return (ds, round) => augmentDataset(ds, o, seed * 7919 + round * 31);
}
