/**
 * One labelled site of the SFDA benchmarks: generated phantoms, or real T1 anatomy (Debian mricron-data) written as a
 * Decathlon folder and read back through the product's dataset loader, exactly as a hospital's folder would be.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadSiteDataset } from '../../site-agent/data/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { buildMricronDatasets } from '../mricron/index.ts';
import { generateSiteData, type ScannerShiftOrPreset } from '../phantoms/index.ts';

export interface BenchmarkData {
  readonly anatomy: 'phantom' | 'mricron';
  readonly size: number;
  readonly numClasses: number;
  readonly slicesPerCase: number;
}

/** `numCases` cases of one scanner; `tag` prefixes the case ids (so sets never share ids). */
export async function benchmarkSiteData(d: BenchmarkData, seed: number, shift: ScannerShiftOrPreset, numCases: number, tag: string): Promise<SliceDataset> {
  if (d.anatomy === 'mricron') {
    const dir = await mkdtemp(join(tmpdir(), `fedsfda-sfda-${tag}-`));
    try {
      await buildMricronDatasets({ out: dir, sites: 1, casesPerSite: numCases, slabSlices: d.slicesPerCase, scanners: [shift], seed, labels: 'aal4' });
      const { dataset } = await loadSiteDataset(join(dir, 'site-1'), { size: d.size, numClasses: d.numClasses, normalization: { kind: 'zscore', mask: 'nonzero' }, seed });
      return { ...dataset, caseIds: dataset.caseIds.map((id) => `${tag}-${id}`) };
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  }
  return generateSiteData({ seed, numCases, slicesPerCase: d.slicesPerCase, size: d.size, numClasses: d.numClasses, shift, caseIdPrefix: `${tag}-` });
}

/** Several labelled sets as one (the centralized reference pools the source sites' slices). */
export function concatSites(sets: readonly SliceDataset[]): SliceDataset {
  if (sets.length === 0) throw new RangeError('concatSites: no sets');
  const f = sets[0];
  const n = sets.reduce((a, s) => a + s.n, 0);
  const px = f.height * f.width * f.channels;
  const images = new Float32Array(n * px);
  const labels = new Uint8Array(n * f.height * f.width);
  let at = 0;
  for (const s of sets) {
    if (s.height !== f.height || s.width !== f.width || s.channels !== f.channels || s.numClasses !== f.numClasses) throw new RangeError('concatSites: sets differ in shape or classes');
    images.set(s.images, at * px);
    labels.set(s.labels, at * f.height * f.width);
    at += s.n;
  }
  return { ...f, n, images, labels, caseIds: sets.flatMap((s) => s.caseIds) };
}

/** The first `cases` cases of a set (slices in case order). */
export function firstCases(ds: SliceDataset, cases: number): SliceDataset {
  const ids: string[] = [];
  let end = 0;
  while (end < ds.n) {
    if (ids[ids.length - 1] !== ds.caseIds[end]) {
      if (ids.length === cases) break;
      ids.push(ds.caseIds[end]);
    }
    end++;
  }
  const px = ds.height * ds.width;
  return { ...ds, n: end, images: ds.images.slice(0, end * px * ds.channels), labels: ds.labels.slice(0, end * px), caseIds: ds.caseIds.slice(0, end) };
}
