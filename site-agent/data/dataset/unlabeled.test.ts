import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { geometryFromSpacing, writeNifti } from '../nifti/index.ts';
import { DatasetError, discoverImages, loadSiteDataset, loadUnlabeledSiteDataset, volumesToImageSlices, volumesToSliceDataset, writeDecathlonDataset, type VolumeCase } from './index.ts';

const DIMS: [number, number, number] = [8, 6, 3];
const SPACING: [number, number, number] = [1, 2, 3];

function volume(seed: number): { image: Float32Array; label: Uint8Array } {
  const n = DIMS[0] * DIMS[1] * DIMS[2];
  const image = Float32Array.from({ length: n }, (_, i) => 1 + ((i * 37 + seed * 11) % 23));
  const label = Uint8Array.from({ length: n }, (_, i) => (image[i] > 12 ? 1 : 0));
  return { image, label };
}

let dir: string;
const like = geometryFromSpacing(DIMS, SPACING);
async function writeImage(file: string, seed: number): Promise<void> {
  await writeNifti(file, volume(seed).image, like, { datatype: 'float32' });
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-unlabeled-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('unlabeled datasets (a new hospital has images only)', () => {
  it('finds the images of a plain folder, skipping files named like labels', async () => {
    const root = join(dir, 'flat');
    await mkdir(root);
    await writeImage(join(root, 'b.nii.gz'), 2);
    await writeImage(join(root, 'a.nii'), 1);
    await writeImage(join(root, 'a_seg.nii.gz'), 1);
    const ds = await discoverImages(root);
    expect(ds.layout).toBe('flat');
    expect(ds.cases.map((c) => c.id)).toEqual(['a', 'b']);
    expect(ds.cases.every((c) => c.label === undefined)).toBe(true);
  });

  it('reads every image of imagesTr/ and imagesTs/ (nnU-Net _0000 names the case, _0001.. are its channels), with or without labelsTr', async () => {
    const root = join(dir, 'nnunet');
    await mkdir(join(root, 'imagesTs'), { recursive: true });
    await mkdir(join(root, 'imagesTr'), { recursive: true });
    await writeImage(join(root, 'imagesTs', 'x_0000.nii.gz'), 3);
    await writeImage(join(root, 'imagesTs', 'x_0001.nii.gz'), 4);
    await writeImage(join(root, 'imagesTr', 'y_0000.nii.gz'), 5);
    const ds = await discoverImages(root);
    expect(ds.layout).toBe('decathlon');
    expect(ds.cases.map((c) => c.id)).toEqual(['y', 'x']);
    expect(ds.cases[1].channelFiles).toEqual([join(root, 'imagesTs', 'x_0000.nii.gz'), join(root, 'imagesTs', 'x_0001.nii.gz')]);
    // y has one channel, x two: a model cannot take both.
    await expect(loadUnlabeledSiteDataset(root, { size: 4 })).rejects.toThrow(/different numbers of input channels \(y: 1, x: 2\)/);
    await writeImage(join(root, 'imagesTr', 'y_0001.nii.gz'), 6);
    const site = await loadUnlabeledSiteDataset(root, { size: 4 });
    expect(site.dataset.n).toBe(2 * DIMS[2]);
    expect(site.dataset.channels).toBe(2);
    expect(site.dataset.images.length).toBe(2 * DIMS[2] * 4 * 4 * 2);
    expect(site.dataset.caseIds).toEqual([...Array(DIMS[2]).fill('y'), ...Array(DIMS[2]).fill('x')]);
    expect('labels' in site.dataset).toBe(false);
  });

  it('loads a Decathlon dataset whose labels are absent, with the same images as its labelled original', async () => {
    const root = join(dir, 'decathlon');
    const cases = [0, 1].map((i) => ({ id: `c${i}`, ...volume(i), like }));
    await writeDecathlonDataset(root, { name: 'd', labels: { 0: 'bg', 1: 'fg' } }, cases);
    const labelled = await loadSiteDataset(root, { size: 4 });
    await rm(join(root, 'labelsTr'), { recursive: true });
    await expect(loadSiteDataset(root, { size: 4 })).rejects.toBeInstanceOf(DatasetError);
    const unlabeled = await loadUnlabeledSiteDataset(root, { size: 4 });
    expect(unlabeled.dataset.images).toEqual(labelled.dataset.images);
    expect(unlabeled.dataset.caseIds).toEqual(labelled.dataset.caseIds);
    expect(unlabeled.dataset.sliceThickness).toBe(labelled.dataset.sliceThickness);
    expect(unlabeled.cases).toEqual(labelled.cases);
  });

  it('slices images exactly as the labelled path does, and refuses a label-masked normalisation', () => {
    const v: VolumeCase = { id: 'v', ...volume(7), dims: DIMS, spacing: SPACING };
    const a = volumesToSliceDataset([v], { size: [5, 7], axis: 1 });
    const b = volumesToImageSlices([{ id: 'v', image: v.image, dims: DIMS, spacing: SPACING }], { size: [5, 7], axis: 1 });
    expect(b.dataset.images).toEqual(a.dataset.images);
    expect(b.dataset.spacing).toEqual(a.dataset.spacing);
    expect(() => volumesToImageSlices([{ id: 'v', image: v.image, dims: DIMS, spacing: SPACING }], { size: 4, normalization: { kind: 'zscore', mask: 'label' } })).toThrow(/needs labels/);
  });

  it('refuses a folder without images, and reports unreadable ones', async () => {
    const empty = join(dir, 'empty');
    await mkdir(empty);
    await expect(discoverImages(empty)).rejects.toMatchObject({ code: 'NOT_A_DATASET' });
    const bad = join(dir, 'bad');
    await mkdir(bad);
    await writeImage(join(bad, 'ok.nii.gz'), 1);
    await writeFile(join(bad, 'broken.nii.gz'), 'not a nifti');
    await expect(loadUnlabeledSiteDataset(bad, { size: 4 })).rejects.toMatchObject({ code: 'BAD_FILES' });
    const skipped = await loadUnlabeledSiteDataset(bad, { size: 4, skipBad: true });
    expect(skipped.loaded.cases.map((c) => c.id)).toEqual(['ok']);
    expect(skipped.loaded.problems.map((p) => p.caseId)).toEqual(['broken']);
  });
});
