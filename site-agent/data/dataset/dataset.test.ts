import { mkdir, mkdtemp, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generatePhantomVolume } from '../../../simulations/phantoms/index.ts';
import { encodeNifti, geometryFromAffine, geometryFromSpacing, writeNifti } from '../nifti/index.ts';
import {
  DatasetError,
  discoverDataset,
  loadDatasetCases,
  loadSiteDataset,
  normalizeVolume,
  reassembleLabelVolume,
  volumesToSliceDataset,
  writeDecathlonDataset,
  type DecathlonCase,
  type VolumeCase,
} from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-dataset-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const DIMS: [number, number, number] = [16, 14, 6];
const SPACING: [number, number, number] = [1, 1.25, 4];
const LABELS = { 0: 'background', 1: 'wall', 2: 'cavity', 3: 'neighbour' };

function phantomCase(id: string, seed: number): DecathlonCase {
  const v = generatePhantomVolume({ seed, dims: DIMS, spacing: SPACING, numClasses: 4, shift: 'scanner-a' });
  // Shift intensities positive so the nonzero mask is the whole body, as in an MR scan.
  const image = v.image.map((x) => Math.max(0, x * 1000));
  return { id, image, label: v.label, like: geometryFromSpacing(DIMS, SPACING) };
}

async function writeGood(name: string, n: number): Promise<string> {
  const root = join(dir, name);
  await writeDecathlonDataset(root, { name, labels: LABELS }, [...Array(n)].map((_, i) => phantomCase(`case_${i}`, 100 + i)));
  return root;
}

describe('Decathlon datasets', () => {
  it('loads a Decathlon folder into a SliceDataset', async () => {
    const root = await writeGood('good', 3);
    const ds = await discoverDataset(root);
    expect(ds.layout).toBe('decathlon');
    expect(ds.training.map((c) => c.id)).toEqual(['case_0', 'case_1', 'case_2']);
    expect([...(ds.labelNames?.keys() ?? [])]).toEqual([0, 1, 2, 3]);
    const site = await loadSiteDataset(root, { size: 8, axis: 2 });
    const d = site.dataset;
    expect(d.n).toBe(3 * 6);
    expect([d.height, d.width, d.channels, d.numClasses]).toEqual([8, 8, 1, 4]);
    expect(d.spacing[0]).toBeCloseTo((1.25 * 14) / 8);
    expect(d.spacing[1]).toBeCloseTo((1 * 16) / 8);
    expect(d.sliceThickness).toBe(4);
    expect(d.caseIds.slice(0, 7)).toEqual([...Array(6).fill('case_0'), 'case_1']);
    expect(site.loaded.problems).toEqual([]);
    expect(site.warnings).toEqual([]);
    expect(d.images.every((v) => Number.isFinite(v))).toBe(true);
  });

  it('lines up an LPS-stored image with a RAS-stored label', async () => {
    const root = join(dir, 'mixed');
    const c = phantomCase('m', 77);
    const [X, Y] = DIMS;
    // The same canonical grid described from the opposite corner: x and y stored reversed on disk.
    const lps = geometryFromAffine(DIMS, [
      [-SPACING[0], 0, 0, SPACING[0] * (X - 1)],
      [0, -SPACING[1], 0, SPACING[1] * (Y - 1)],
      [0, 0, SPACING[2], 0],
      [0, 0, 0, 1],
    ]);
    await writeNifti(join(root, 'images', 'm.nii.gz'), c.image, lps);
    await writeNifti(join(root, 'labels', 'm.nii.gz'), c.label!, c.like);
    const loaded = await loadDatasetCases(root);
    expect(loaded.cases[0].image.orientation).toBe('LPS');
    expect(Array.from(loaded.cases[0].label)).toEqual(Array.from(c.label!));
    expect(Array.from(loaded.cases[0].image.data)).toEqual(Array.from(c.image));
  });

  it('stops with the full list of bad files, or skips them with skipBad', async () => {
    const root = await writeGood('bad', 2);
    const good = phantomCase('x', 1);
    // Label grid differs from the image grid.
    await writeNifti(join(root, 'imagesTr', 'dims.nii.gz'), good.image, good.like);
    await writeNifti(join(root, 'labelsTr', 'dims.nii.gz'), new Uint8Array(8 * 8 * 8), geometryFromSpacing([8, 8, 8], [1, 1, 1]));
    // Same dims, different spacing.
    await writeNifti(join(root, 'imagesTr', 'spacing.nii.gz'), good.image, good.like);
    await writeNifti(join(root, 'labelsTr', 'spacing.nii.gz'), good.label!, geometryFromSpacing(DIMS, [1, 1.25, 5]));
    // Same grid, shifted origin.
    const moved = geometryFromAffine(DIMS, [
      [1, 0, 0, 30],
      [0, 1.25, 0, 0],
      [0, 0, 4, 0],
      [0, 0, 0, 1],
    ]);
    await writeNifti(join(root, 'imagesTr', 'origin.nii.gz'), good.image, good.like);
    await writeNifti(join(root, 'labelsTr', 'origin.nii.gz'), good.label!, moved);
    // Unexpected label value 9.
    const lab9 = good.label!.slice();
    lab9[40] = 9;
    await writeNifti(join(root, 'imagesTr', 'value.nii.gz'), good.image, good.like);
    await writeNifti(join(root, 'labelsTr', 'value.nii.gz'), lab9, good.like);
    // NaN voxels in the image.
    const nan = Float32Array.from(good.image);
    nan[7] = Number.NaN;
    await writeNifti(join(root, 'imagesTr', 'nan.nii.gz'), nan, good.like);
    await writeNifti(join(root, 'labelsTr', 'nan.nii.gz'), good.label!, good.like);
    // Truncated image.
    const bytes = encodeNifti('t', good.image, good.like, { gzip: true });
    await writeFile(join(root, 'imagesTr', 'trunc.nii.gz'), bytes.subarray(0, bytes.length >> 1));
    await writeNifti(join(root, 'labelsTr', 'trunc.nii.gz'), good.label!, good.like);
    const json = JSON.parse(await readFile(join(root, 'dataset.json'), 'utf8'));
    for (const id of ['dims', 'spacing', 'origin', 'value', 'nan', 'trunc']) json.training.push({ image: `./imagesTr/${id}.nii.gz`, label: `./labelsTr/${id}.nii.gz` });
    json.training.push({ image: './imagesTr/absent.nii.gz', label: './labelsTr/absent.nii.gz' });
    json.training.push({ image: '../../etc/passwd', label: './labelsTr/case_0.nii.gz' });
    await symlink('/etc/hostname', join(root, 'imagesTr', 'link.nii.gz'));
    json.training.push({ image: './imagesTr/link.nii.gz', label: './labelsTr/case_0.nii.gz' });
    await writeFile(join(root, 'dataset.json'), JSON.stringify(json));

    let err: unknown;
    try {
      await loadDatasetCases(root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    const de = err as DatasetError;
    expect(de.code).toBe('BAD_FILES');
    const codes = Object.fromEntries(de.problems.filter((p) => p.code !== 'MISSING_FILE' || p.role === 'image').map((p) => [p.caseId, p.code]));
    expect(codes).toMatchObject({
      dims: 'DIMS_MISMATCH',
      spacing: 'SPACING_MISMATCH',
      origin: 'GEOMETRY_MISMATCH',
      value: 'BAD_LABEL_VALUES',
      nan: 'NON_FINITE',
      trunc: 'TRUNCATED',
      absent: 'MISSING_FILE',
    });
    expect(de.problems.filter((p) => p.code === 'OUTSIDE_DATASET')).toHaveLength(2);
    expect(de.message).toMatch(/value\.nii\.gz/);

    const skipped = await loadDatasetCases(root, { skipBad: true });
    expect(skipped.cases.map((c) => c.id)).toEqual(['case_0', 'case_1']);
    expect(skipped.problems.length).toBe(de.problems.length);
    const site = await loadSiteDataset(root, { size: 8, skipBad: true });
    expect(site.dataset.n).toBe(12);
    expect(site.warnings[0]).toMatch(/skipped 8 bad case/);
  });

  it('rejects a broken dataset.json and a missing folder', async () => {
    const root = join(dir, 'badjson');
    await mkdir(root, { recursive: true });
    await writeFile(join(root, 'dataset.json'), '{"labels": {}, "training": []');
    await expect(discoverDataset(root)).rejects.toMatchObject({ code: 'BAD_DATASET_JSON' });
    await writeFile(join(root, 'dataset.json'), '{"labels": {"0": "bg"}, "training": [{"image": 3}]}');
    await expect(discoverDataset(root)).rejects.toMatchObject({ code: 'BAD_DATASET_JSON' });
    await expect(discoverDataset(join(dir, 'nowhere'))).rejects.toMatchObject({ code: 'NOT_A_DATASET' });
  });

  it('matches nnU-Net v2 files by name when dataset.json has no training list', async () => {
    const root = join(dir, 'nnunet');
    const c = phantomCase('a', 5);
    await writeNifti(join(root, 'imagesTr', 'pat1_0000.nii.gz'), c.image, c.like);
    await writeNifti(join(root, 'labelsTr', 'pat1.nii.gz'), c.label!, c.like);
    await writeNifti(join(root, 'imagesTr', 'pat2_0000.nii.gz'), c.image, c.like);
    await writeFile(join(root, 'dataset.json'), JSON.stringify({ labels: { background: 0, wall: 1, cavity: 2, neighbour: 3 }, file_ending: '.nii.gz', channel_names: { 0: 'T1' } }));
    const ds = await discoverDataset(root);
    expect(ds.training.map((t) => t.id)).toEqual(['pat1']);
    expect(ds.problems.map((p) => [p.caseId, p.code])).toEqual([['pat2', 'MISSING_LABEL']]);
  });
});

describe('plain folders of pairs', () => {
  it('pairs images/ with labels/ and X with X_seg, and reports strays', async () => {
    const a = join(dir, 'pairs-a');
    const c = phantomCase('p', 9);
    await writeNifti(join(a, 'images', 'p1.nii.gz'), c.image, c.like);
    await writeNifti(join(a, 'labels', 'p1.nii.gz'), c.label!, c.like);
    await writeNifti(join(a, 'images', 'p2.nii'), c.image, c.like);
    const da = await discoverDataset(a);
    expect(da.layout).toBe('pairs');
    expect(da.training.map((t) => t.id)).toEqual(['p1']);
    expect(da.problems[0]).toMatchObject({ caseId: 'p2', code: 'MISSING_LABEL' });

    const b = join(dir, 'pairs-b');
    await writeNifti(join(b, 'q1.nii.gz'), c.image, c.like);
    await writeNifti(join(b, 'q1_seg.nii.gz'), c.label!, c.like);
    await writeNifti(join(b, 'q2.nii.gz'), c.image, c.like);
    await mkdir(join(b, 'q2_mask.nii.gz'));
    const db = await discoverDataset(b);
    expect(db.training.map((t) => t.id)).toEqual(['q1']);
    expect(db.problems.map((p) => p.code)).toContain('NOT_A_FILE');
    const loaded = await loadDatasetCases(b, { skipBad: true });
    expect(loaded.cases[0].labelValues).toEqual([0, 1, 2, 3]);
  });
});

describe('preprocessing', () => {
  const v = generatePhantomVolume({ seed: 4, dims: [20, 16, 12], spacing: [1, 1, 2], numClasses: 4, shift: 'none' });
  const vc: VolumeCase = { id: 'v', image: v.image.map((x) => x + 0.5), label: v.label, dims: v.dims, spacing: v.spacing };

  it('slices along each axis with the right plane shape and spacing', () => {
    for (const [axis, n, h0, w0] of [
      [0, 20, 12, 16],
      [1, 16, 12, 20],
      [2, 12, 16, 20],
    ] as const) {
      const r = volumesToSliceDataset([vc], { size: [h0, w0], axis, normalization: { kind: 'none' } });
      expect(r.dataset.n).toBe(n);
      const inPlane = [0, 1, 2].filter((a) => a !== axis);
      expect(r.dataset.spacing).toEqual([v.spacing[inPlane[1]], v.spacing[inPlane[0]]]);
      // At native size, reassembling the labels gives the volume back exactly.
      expect(Array.from(reassembleLabelVolume(r.dataset.labels, h0, w0, r.cases[0]))).toEqual(Array.from(v.label));
    }
  });

  it('thins empty slices deterministically and remaps labels', () => {
    const all = volumesToSliceDataset([vc], { size: 8 });
    const none = volumesToSliceDataset([vc], { size: 8, emptySliceKeepRate: 0, seed: 1 });
    expect(none.dataset.n).toBeLessThan(all.dataset.n);
    expect(none.dataset.sliceThickness).toBeUndefined();
    expect(none.warnings.join()).toMatch(/skipped/);
    for (let s = 0; s < none.dataset.n; s++) expect(none.dataset.labels.subarray(s * 64, (s + 1) * 64).some((l) => l > 0)).toBe(true);
    const h1 = volumesToSliceDataset([vc], { size: 8, emptySliceKeepRate: 0.5, seed: 3 });
    const h2 = volumesToSliceDataset([vc], { size: 8, emptySliceKeepRate: 0.5, seed: 3 });
    expect(h1.cases[0].sourceIndex).toEqual(h2.cases[0].sourceIndex);
    expect(Buffer.from(h1.dataset.images.buffer).equals(Buffer.from(h2.dataset.images.buffer))).toBe(true);
    const merged = volumesToSliceDataset([vc], { size: 8, labelMap: { 2: 1, 3: 2 }, numClasses: 3 });
    expect(new Set(merged.dataset.labels)).toEqual(new Set([0, 1, 2]));
    expect(() => volumesToSliceDataset([vc], { size: 8, numClasses: 3 })).toThrow(DatasetError);
    expect(() => volumesToSliceDataset([vc], { size: 1 })).toThrow(DatasetError);
  });

  it('normalises by masked z-score or percentile clipping', () => {
    const img = Float32Array.from([0, 0, 0, 0, 1, 2, 3, 4, 5, 100]);
    const a = img.slice();
    normalizeVolume(a, new Uint8Array(10), { kind: 'zscore', mask: 'nonzero' });
    expect(Array.from(a.subarray(0, 4))).toEqual([0, 0, 0, 0]);
    const nz = Array.from(a.subarray(4));
    expect(nz.reduce((s, x) => s + x, 0)).toBeCloseTo(0, 4);
    const b = img.slice();
    normalizeVolume(b, new Uint8Array(10), { kind: 'percentile', lower: 0, upper: 80 });
    // 100 is clipped to the 80th percentile (value 5), so it equals the voxel that was 5.
    expect(b[9]).toBeCloseTo(b[8]);
  });
});
