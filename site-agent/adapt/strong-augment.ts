/**
 * The student's "strong" view in mean-teacher adaptation (CBMT: Tang, Zhang, Liang, Wang, Zhang, "Source-Free Domain
 * Adaptive Fundus Image Segmentation with Class-Balanced Mean Teacher", MICCAI 2023, sec. 2.2 and code
 * `lloongx/SFDA-CBMT` custom_transforms.py: salt-and-pepper noise, random gamma, random erasing). Intensity-only, so
 * the teacher's pseudo-labels stay valid pixel for pixel: per slice, each with probability `prob`,
 * gamma on the min-max normalised slice (log-uniform in [1/gammaMax, gammaMax]), contrast/brightness about the mean,
 * Gaussian noise, salt-and-pepper noise, and one erased rectangle (2-6% of the slice) filled with the slice mean.
 */
import { AdaptError } from './adapt-error.ts';
import type { Rng } from '../../protocol/common/index.ts';

export interface StrongAugmentOptions {
  readonly prob?: number;
  readonly gammaMax?: number;
  readonly contrast?: number;
  readonly noise?: number;
  readonly saltPepper?: number;
  readonly erase?: boolean;
}

function checkOptions(o: Required<StrongAugmentOptions>): void {
  if (!(o.prob >= 0 && o.prob <= 1)) throw new AdaptError('BAD_OPTION', `augment.prob must be in [0, 1], got ${o.prob}`);
  if (!(o.gammaMax >= 1)) throw new AdaptError('BAD_OPTION', `augment.gammaMax must be >= 1, got ${o.gammaMax}`);
  if (!(o.contrast >= 0 && o.contrast < 1)) throw new AdaptError('BAD_OPTION', `augment.contrast must be in [0, 1), got ${o.contrast}`);
  if (!(o.noise >= 0) || !(o.saltPepper >= 0 && o.saltPepper < 0.5)) throw new AdaptError('BAD_OPTION', 'augment.noise must be >= 0 and augment.saltPepper in [0, 0.5)');
}

function gammaSlice(v: Float32Array, g: number): void {
  let lo = Infinity;
  let hi = -Infinity;
  for (const x of v) {
    lo = Math.min(lo, x);
    hi = Math.max(hi, x);
  }
  if (!(hi > lo)) return;
  for (let i = 0; i < v.length; i++) v[i] = lo + (hi - lo) * ((v[i] - lo) / (hi - lo)) ** g;
}

function eraseRect(v: Float32Array, h: number, w: number, rng: Rng): void {
  const area = rng.uniform(0.02, 0.06) * h * w;
  const ratio = rng.uniform(0.3, 1 / 0.3);
  const eh = Math.max(1, Math.min(h, Math.round(Math.sqrt(area * ratio))));
  const ew = Math.max(1, Math.min(w, Math.round(Math.sqrt(area / ratio))));
  const r0 = rng.int(h - eh + 1);
  const c0 = rng.int(w - ew + 1);
  const mean = v.reduce((a, b) => a + b, 0) / v.length;
  for (let r = r0; r < r0 + eh; r++) v.fill(mean, r * w + c0, r * w + c0 + ew);
}

/** A strongly augmented copy of `images` (n slices of h x w, one channel). */
export function strongAugment(images: Float32Array, n: number, h: number, w: number, rng: Rng, opts: StrongAugmentOptions = {}): Float32Array {
  const o = { prob: 0.8, gammaMax: 2, contrast: 0.3, noise: 0.1, saltPepper: 0.004, erase: true, ...opts };
  checkOptions(o);
  const out = new Float32Array(images);
  const px = h * w;
  for (let s = 0; s < n; s++) {
    const v = out.subarray(s * px, (s + 1) * px);
    if (rng.next() < o.prob) gammaSlice(v, Math.exp(rng.uniform(-Math.log(o.gammaMax), Math.log(o.gammaMax))));
    if (rng.next() < o.prob && o.contrast > 0) {
      const mean = v.reduce((a, b) => a + b, 0) / px;
      const c = rng.uniform(1 - o.contrast, 1 + o.contrast);
      const b = rng.uniform(-o.contrast, o.contrast);
      for (let i = 0; i < px; i++) v[i] = mean + c * (v[i] - mean) + b;
    }
    if (rng.next() < o.prob && o.noise > 0) {
      const sd = rng.uniform(0, o.noise);
      for (let i = 0; i < px; i++) v[i] += sd * rng.normal();
    }
    if (rng.next() < o.prob && o.saltPepper > 0) {
      let lo = Infinity;
      let hi = -Infinity;
      for (const x of v) {
        lo = Math.min(lo, x);
        hi = Math.max(hi, x);
      }
      const count = Math.ceil(o.saltPepper * px);
      for (let i = 0; i < count; i++) v[rng.int(px)] = rng.next() < 0.2 ? hi : lo;
    }
    if (o.erase && rng.next() < o.prob * 0.5) eraseRect(v, h, w, rng);
  }
  return out;
}
