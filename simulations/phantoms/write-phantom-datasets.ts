/**
 * Phantom volumes written as one Medical Segmentation Decathlon folder per simulated site, so the NIfTI
 * path (dataset loader, `fedsfda data check`, viewers such as ITK-SNAP) can be exercised without any download.
 */
import { join } from 'node:path';
import { writeDecathlonDataset, type DecathlonCase } from '../../site-agent/data/dataset/index.ts';
import { geometryFromSpacing } from '../../site-agent/data/nifti/index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { PhantomError, requireInt } from './phantom-error.ts';
import { generatePhantomVolume } from './phantom-volume.ts';
import { resolveScannerShift, type ScannerShiftOrPreset } from './scanner-shift.ts';

export interface PhantomDatasetsOptions {
  out: string;
  sites: number;
  casesPerSite?: number;
  /** [x, y, z] voxels per case (default [64, 64, 16]). */
  dims?: readonly [number, number, number];
  /** Voxel size in mm (default [3, 3, 6]). */
  spacing?: readonly [number, number, number];
  numClasses?: number;
  /** One scanner per site (cycled); default scanner-a, scanner-b, scanner-c, mr-to-ct. */
  scanners?: readonly ScannerShiftOrPreset[];
  seed?: number;
  /**
   * Input contrasts per case (default 1). Contrast k > 0 is the same anatomy seen through the next scanner in the
   * list (a second MR sequence); cases are written nnU-Net style (`_0000`, `_0001`) with a modality map.
   */
  contrasts?: number;
}

const DEFAULT_SCANNERS: readonly ScannerShiftOrPreset[] = ['scanner-a', 'scanner-b', 'scanner-c', 'mr-to-ct'];

const NAMES = ['background', 'wall', 'cavity', 'neighbour'];

/** Writes `<out>/site-<i>` for i = 1..sites; returns the folders with their scanners. */
export async function writePhantomDatasets(opts: PhantomDatasetsOptions): Promise<Array<{ dir: string; scanner: ScannerShiftOrPreset }>> {
  requireInt('sites', opts.sites, 1, 64);
  const cases = requireInt('casesPerSite', opts.casesPerSite ?? 6, 1, 1000);
  const K = requireInt('numClasses', opts.numClasses ?? 4, 2, 16);
  const dims = opts.dims ?? [64, 64, 16];
  const spacing = opts.spacing ?? [3, 3, 6];
  const scanners = opts.scanners ?? DEFAULT_SCANNERS;
  if (scanners.length === 0) throw new PhantomError('scanners must not be empty');
  scanners.forEach((s) => resolveScannerShift(s));
  const contrasts = requireInt('contrasts', opts.contrasts ?? 1, 1, 4);
  const root = new Rng(opts.seed ?? 1);
  const out: Array<{ dir: string; scanner: ScannerShiftOrPreset }> = [];
  for (let s = 0; s < opts.sites; s++) {
    const siteRng = root.fork();
    const scanner = scanners[s % scanners.length];
    const list: DecathlonCase[] = [];
    for (let c = 0; c < cases; c++) {
      const seed = siteRng.uint32();
      const v = generatePhantomVolume({ seed, dims, spacing, numClasses: K, shift: scanner });
      // Anatomy depends on the seed only, so the other contrasts share the label map.
      const more = [...Array(contrasts - 1)].map((_, k) => generatePhantomVolume({ seed, dims, spacing, numClasses: K, shift: scanners[(s + 1 + k) % scanners.length] }).image);
      const id = `site${s + 1}_case${String(c).padStart(3, '0')}`;
      list.push({ id, image: v.image, ...(contrasts > 1 ? { channels: [v.image, ...more] } : {}), label: v.label, like: geometryFromSpacing(v.dims, v.spacing) });
    }
    const labels: Record<number, string> = {};
    for (let k = 0; k < K; k++) labels[k] = NAMES[k] ?? `structure ${k}`;
    const dir = join(opts.out, `site-${s + 1}`);
    const modality = contrasts > 1 ? [...Array(contrasts)].map((_, k) => `phantom contrast ${k + 1}`) : 'phantom';
    await writeDecathlonDataset(dir, { name: `phantom-site-${s + 1}`, labels, modality, extra: { fedsfda: { source: 'phantom', scanner, seed: opts.seed ?? 1 } } }, list);
    out.push({ dir, scanner });
  }
  return out;
}
