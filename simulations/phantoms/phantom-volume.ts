/**
 * A single 3D phantom volume in NIfTI voxel order (x fastest, then y, then z), for NIfTI and dataset tests
 * and for writing example datasets. The scanner shift's blur and resolution act in-plane (per axial slice),
 * as in a 2D multi-slice acquisition.
 */
import { Rng } from '../../protocol/common/index.ts';
import { MAX_PHANTOM_CLASSES, renderAnatomySlice, sampleAnatomy } from './anatomy.ts';
import { applyScannerShift, sampleBiasField } from './apply-scanner-shift.ts';
import { caseGenerators, MAX_PHANTOM_PIXELS, phantomShift, zScoreRange } from './generate-site-data.ts';
import { PhantomError, requireInt } from './phantom-error.ts';
import type { ScannerShiftOrPreset } from './scanner-shift.ts';

export interface PhantomVolumeOptions {
  seed: number;
  /** [x, y, z] voxel counts. */
  dims: readonly [number, number, number];
  /** Voxel size in mm, [x, y, z] (default [1, 1, 1]); anisotropic spacing is fine. */
  spacing?: readonly [number, number, number];
  numClasses: number;
  shift: ScannerShiftOrPreset;
  /** `none` (default): tissue-scale intensities (~[0,1] plus shift effects); `zscore`: whole-volume z-score. */
  normalize?: 'none' | 'zscore';
}

export interface PhantomVolume {
  /** x + dims[0] * (y + dims[1] * z) indexing. */
  readonly image: Float32Array;
  readonly label: Uint8Array;
  readonly dims: [number, number, number];
  readonly spacing: [number, number, number];
}

/** Generates one deterministic phantom volume (the first case of the site with the same seed). */
export function generatePhantomVolume(opts: PhantomVolumeOptions): PhantomVolume {
  if (typeof opts !== 'object' || opts === null) throw new PhantomError('options object required');
  if (typeof opts.seed !== 'number' || !Number.isFinite(opts.seed)) throw new PhantomError(`seed must be a finite number, got ${String(opts.seed)}`);
  if (!Array.isArray(opts.dims) || opts.dims.length !== 3) throw new PhantomError('dims must be [x, y, z]');
  const X = requireInt('dims[0]', opts.dims[0], 1, 4096);
  const Y = requireInt('dims[1]', opts.dims[1], 1, 4096);
  const Z = requireInt('dims[2]', opts.dims[2], 1, 4096);
  if (X * Y * Z > MAX_PHANTOM_PIXELS) throw new PhantomError(`volume of ${X * Y * Z} voxels exceeds the limit ${MAX_PHANTOM_PIXELS}`);
  const K = requireInt('numClasses', opts.numClasses, 2, MAX_PHANTOM_CLASSES);
  const spacing: [number, number, number] = opts.spacing ? [opts.spacing[0], opts.spacing[1], opts.spacing[2]] : [1, 1, 1];
  if (!spacing.every((s) => typeof s === 'number' && Number.isFinite(s) && s > 0)) {
    throw new PhantomError(`spacing must be three positive numbers, got ${JSON.stringify(opts.spacing)}`);
  }
  const shift = phantomShift(opts.shift);
  const gens = caseGenerators(new Rng(opts.seed));
  const anatomy = sampleAnatomy(gens.anatomy, K);
  const bias = sampleBiasField(gens.scanner);
  const plane = X * Y;
  const image = new Float32Array(plane * Z);
  const label = new Uint8Array(plane * Z);
  for (let k = 0; k < Z; k++) {
    // Full z range, so that the structures' ends are inside the volume (some end slices are empty).
    const z = (2 * (k + 0.5)) / Z - 1;
    // Rows are y and columns x, which is exactly the x-fastest NIfTI order within a slice.
    renderAnatomySlice(anatomy, z, Y, X, image, label, k * plane);
    applyScannerShift(image, k * plane, Y, X, z, shift, bias, gens.scanner);
  }
  if (opts.normalize === 'zscore') zScoreRange(image, 0, image.length);
  return { image, label, dims: [X, Y, Z], spacing };
}
