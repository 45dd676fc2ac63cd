/** Input channels from a 4D image, from nnU-Net channel files, and the modality map that fixes their count. */
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { encodeNifti, geometryFromSpacing, writeNifti } from '../nifti/index.ts';
import { DatasetError, loadDatasetCases, loadSiteDataset } from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-mc-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const dims: [number, number, number] = [6, 6, 2];
const n = 72;
const like = geometryFromSpacing(dims, [1, 1, 3]);
const label = Uint8Array.from({ length: n }, (_, i) => (i % 6 > 2 ? 1 : 0));

/** A 4D file with `k` volumes: volume v has value 100 * (v + 1) + (i % 7) at voxel i. */
function fourD(k: number): Uint8Array {
  const head = encodeNifti('x', new Float32Array(n).map((_, i) => 100 + (i % 7)), like);
  const dv = new DataView(head.buffer);
  dv.setInt16(40, 4, true);
  dv.setInt16(48, k, true);
  const out = new Uint8Array(head.length + (k - 1) * n * 4);
  out.set(head);
  for (let v = 1; v < k; v++) new Float32Array(out.buffer, head.length + (v - 1) * n * 4, n).set(new Float32Array(n).map((_, i) => 100 * (v + 1) + (i % 7)));
  return gzipSync(out);
}

async function dataset(name: string, volumes: number, modality: Record<string, string>): Promise<string> {
  const root = join(dir, name);
  await writeNifti(join(root, 'labelsTr', 'a.nii.gz'), label, like, { label: true });
  await mkdir(join(root, 'imagesTr'));
  await writeFile(join(root, 'imagesTr', 'a.nii.gz'), fourD(volumes));
  await writeFile(join(root, 'dataset.json'), JSON.stringify({ labels: { 0: 'bg', 1: 'fg' }, modality, training: [{ image: './imagesTr/a.nii.gz', label: './labelsTr/a.nii.gz' }] }));
  return root;
}

describe('multi-channel cases', () => {
  it('a 4D image gives one channel per volume, interleaved NHWC after slicing', async () => {
    const root = await dataset('four', 3, { 0: 'FLAIR', 1: 'T1w', 2: 'T2w' });
    const site = await loadSiteDataset(root, { size: 6, normalization: { kind: 'none' } });
    expect(site.loaded.channels).toBe(3);
    expect(site.loaded.modalities).toEqual(['FLAIR', 'T1w', 'T2w']);
    expect(site.dataset.channels).toBe(3);
    // Pixel 0 of slice 0: the three volumes' values at voxel (0, 5, 0) (rows follow y from the top).
    const first = Array.from(site.dataset.images.subarray(0, 3));
    expect(first[1] - first[0]).toBe(100);
    expect(first[2] - first[0]).toBe(200);
  });

  it('refuses a case whose channel count differs from the modality map', async () => {
    const root = await dataset('mismatch', 2, { 0: 'FLAIR', 1: 'T1w', 2: 'T2w' });
    let err: unknown;
    try {
      await loadDatasetCases(root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).problems.map((p) => [p.code, p.message])).toEqual([['CHANNELS_MISMATCH', "2 channel(s), the dataset's modality list names 3"]]);
  });
});
