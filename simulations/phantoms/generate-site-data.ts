/**
 * One simulated site: `numCases` phantom volumes seen through one scanner, cut into axial 2D slices,
 * each case z-scored on its own (as a site would normalise each scan).
 */
import { Rng } from '../../protocol/common/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { MAX_PHANTOM_CLASSES, renderAnatomySlice, sampleAnatomy } from './anatomy.ts';
import { applyScannerShift, sampleBiasField } from './apply-scanner-shift.ts';
import { PhantomError, requireInt } from './phantom-error.ts';
import { resolveScannerShift, ScannerShiftError, type ScannerShiftOrPreset } from './scanner-shift.ts';

export interface GenerateSiteDataOptions {
  /** Seeds the anatomy and the scanner noise; the same seed gives the same anatomy under any shift. */
  seed: number;
  numCases: number;
  slicesPerCase: number;
  /** Square slice size in pixels (height = width). */
  size: number;
  /** Background + structures, 2..16 (default layout: 4 = background, wall ring, cavity, neighbour). */
  numClasses: number;
  /** A preset name (`none`, `scanner-a`, `scanner-b`, `scanner-c`, `scanner-d`, `low-field`, `mr-to-ct`) or a spec. */
  shift: ScannerShiftOrPreset;
  /** Field of view in mm (default 200); the in-plane spacing is fovMm / size. */
  fovMm?: number;
  /** Prefix of the case ids (default `phantom-<seed>-`); case i is `<prefix><i, 3 digits>`. */
  caseIdPrefix?: string;
  /** Per foreground class (numClasses - 1 entries), the probability that a case contains it (default: always). */
  classPresence?: readonly number[];
}

/** Checks a classPresence option against the class count. */
export function checkClassPresence(p: readonly number[] | undefined, numClasses: number): void {
  if (p === undefined) return;
  if (!Array.isArray(p) || p.length !== numClasses - 1 || p.some((x) => typeof x !== 'number' || !(x >= 0 && x <= 1))) {
    throw new PhantomError(`classPresence must list ${numClasses - 1} probabilities in [0, 1] (one per foreground class)`);
  }
}

/** A preset name or spec resolved for the phantom generators; a bad one is a PhantomError naming it. */
export function phantomShift(shift: ScannerShiftOrPreset): ReturnType<typeof resolveScannerShift> {
  try {
    return resolveScannerShift(shift);
  } catch (e) {
    if (e instanceof ScannerShiftError) throw new PhantomError(e.message);
    throw e;
  }
}

/** Upper bound on generated pixels (n * size^2), so a typo cannot allocate gigabytes. */
export const MAX_PHANTOM_PIXELS = 1 << 27;

/** Derives a case's anatomy and scanner-noise generators from the site seed; shared with the 3D variant. */
export function caseGenerators(root: Rng): { anatomy: Rng; scanner: Rng } {
  const caseSeed = root.uint32();
  return { anatomy: new Rng(caseSeed), scanner: new Rng((caseSeed ^ 0xa5a5a5a5) >>> 0) };
}

/** Normalised axial position of slice s of S, spread over the central 70% of the volume. */
export function slicePosition(s: number, S: number): number {
  return -0.7 + (1.4 * (s + 0.5)) / S;
}

/** Z-scores `data[start, end)` in place (a constant block becomes zeros). */
export function zScoreRange(data: Float32Array, start: number, end: number): void {
  let sum = 0;
  for (let i = start; i < end; i++) sum += data[i];
  const mean = sum / (end - start);
  let ss = 0;
  for (let i = start; i < end; i++) {
    const d = data[i] - mean;
    ss += d * d;
  }
  const std = Math.sqrt(ss / (end - start));
  const inv = std > 1e-8 ? 1 / std : 0;
  for (let i = start; i < end; i++) data[i] = (data[i] - mean) * inv;
}

/**
 * Generates one site's slices. Deterministic in `seed`; labels depend only on the seed, not on the shift.
 *
 * @example
 * const a = generateSiteData({ seed: 1, numCases: 8, slicesPerCase: 5, size: 48, numClasses: 4, shift: 'scanner-a' });
 * const t = generateSiteData({ seed: 2, numCases: 8, slicesPerCase: 5, size: 48, numClasses: 4, shift: 'mr-to-ct' });
 */
export function generateSiteData(opts: GenerateSiteDataOptions): SliceDataset {
  if (typeof opts !== 'object' || opts === null) throw new PhantomError('options object required');
  if (typeof opts.seed !== 'number' || !Number.isFinite(opts.seed)) throw new PhantomError(`seed must be a finite number, got ${String(opts.seed)}`);
  const numCases = requireInt('numCases', opts.numCases, 1, 100000);
  const S = requireInt('slicesPerCase', opts.slicesPerCase, 1, 10000);
  const size = requireInt('size', opts.size, 4, 4096);
  const K = requireInt('numClasses', opts.numClasses, 2, MAX_PHANTOM_CLASSES);
  checkClassPresence(opts.classPresence, K);
  const fov = opts.fovMm ?? 200;
  if (!(fov > 0) || !Number.isFinite(fov)) throw new PhantomError(`fovMm must be a positive number, got ${String(opts.fovMm)}`);
  if (numCases * S * size * size > MAX_PHANTOM_PIXELS) {
    throw new PhantomError(`numCases * slicesPerCase * size^2 = ${numCases * S * size * size} exceeds the limit ${MAX_PHANTOM_PIXELS}`);
  }
  const shift = phantomShift(opts.shift);
  const prefix = opts.caseIdPrefix ?? `phantom-${opts.seed}-`;
  const n = numCases * S;
  const px = size * size;
  const images = new Float32Array(n * px);
  const labels = new Uint8Array(n * px);
  const caseIds: string[] = new Array(n);
  const root = new Rng(opts.seed);
  for (let ci = 0; ci < numCases; ci++) {
    const gens = caseGenerators(root);
    const anatomy = sampleAnatomy(gens.anatomy, K, opts.classPresence);
    const bias = sampleBiasField(gens.scanner);
    const id = `${prefix}${String(ci).padStart(3, '0')}`;
    for (let s = 0; s < S; s++) {
      const idx = ci * S + s;
      const z = slicePosition(s, S);
      renderAnatomySlice(anatomy, z, size, size, images, labels, idx * px);
      applyScannerShift(images, idx * px, size, size, z, shift, bias, gens.scanner);
      caseIds[idx] = id;
    }
    zScoreRange(images, ci * S * px, (ci + 1) * S * px);
  }
  const sp = fov / size;
  // Normalised coordinates span fovMm in every direction; the slices cover 1.4 of the 2 units in z.
  const sliceThickness = (0.7 * fov) / S;
  return { n, height: size, width: size, channels: 1, images, labels, numClasses: K, spacing: [sp, sp], caseIds, sliceThickness };
}
