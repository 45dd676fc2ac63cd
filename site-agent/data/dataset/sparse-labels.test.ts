/** Atlas-style datasets: label files with sparse codes listed in dataset.json, mapped to contiguous classes and back. */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { checkPath } from '../cli/index.ts';
import { geometryFromSpacing, readNifti, writeNifti } from '../nifti/index.ts';
import { DatasetError, loadDatasetCases, loadSiteDataset, reassembleLabelVolume, writePrediction } from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-sparse-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

const dims: [number, number, number] = [8, 8, 3];
const like = geometryFromSpacing(dims, [1, 1, 2]);
// AAL-style codes: region numbers, not class indices (AAL's run from 2001 to 9170).
const CODES = [0, 2001, 4101, 9170];

async function atlasDataset(name: string, labels: Record<string, string>, codeAt: (i: number) => number): Promise<string> {
  const root = join(dir, name);
  const n = dims[0] * dims[1] * dims[2];
  for (const id of ['a', 'b']) {
    await writeNifti(join(root, 'imagesTr', `${id}.nii.gz`), new Float32Array(n).map((_, i) => 100 + (i % 17)), like);
    await writeNifti(join(root, 'labelsTr', `${id}.nii.gz`), new Float32Array(n).map((_, i) => codeAt(i)), like, { datatype: 'int16', label: true });
  }
  const training = ['a', 'b'].map((id) => ({ image: `./imagesTr/${id}.nii.gz`, label: `./labelsTr/${id}.nii.gz` }));
  await writeFile(join(root, 'dataset.json'), JSON.stringify({ name, labels, training }));
  return root;
}

describe('sparse label codes', () => {
  it('maps listed codes to contiguous classes, keeps the table, and writes predictions back with the codes', async () => {
    const root = await atlasDataset('aal', { 0: 'background', 2001: 'Precentral_L', 4101: 'Hippocampus_L', 9170: 'Vermis_10' }, (i) => CODES[i % 4]);
    const site = await loadSiteDataset(root, { size: 8, axis: 2 });
    expect(site.labelCodes).toEqual(CODES);
    expect(site.dataset.numClasses).toBe(4);
    expect(Array.from(site.dataset.labels.subarray(0, 8))).toEqual([0, 1, 2, 3, 0, 1, 2, 3]);
    // A prediction equal to the training classes comes back as the original file, codes and all.
    const c = site.cases[0];
    const px = site.dataset.height * site.dataset.width;
    const vol = reassembleLabelVolume(site.dataset.labels.subarray(c.start * px, (c.start + c.count) * px), 8, 8, c);
    const out = join(dir, 'pred.nii.gz');
    await writePrediction(out, vol, site.loaded.cases[0].image, site.labelCodes);
    const back = await readNifti(out);
    const orig = await readNifti(join(root, 'labelsTr', 'a.nii.gz'));
    expect(back.datatype).toBe('uint16');
    expect(Array.from(back.data)).toEqual(Array.from(orig.data));
  });

  it('reports an unlisted code without contradicting itself', async () => {
    const root = await atlasDataset('unlisted', { 0: 'background', 2001: 'a', 4101: 'b', 9170: 'c' }, (i) => (i === 5 ? 1379 : CODES[i % 4]));
    const report = await checkPath(root);
    expect(report.ok).toBe(false);
    const msg = report.files.flatMap((f) => f.problems.map((p) => p.message)).join('\n');
    expect(msg).toMatch(/label values 1379 \(x1\) are not among the 4 label codes listed in the dataset's labels \(0, 2001, 4101, 9170\)/);
    expect(msg).not.toMatch(/expected one of .*1379/);
  });

  it('refuses more classes than a model holds with the count and what to do', async () => {
    const labels: Record<string, string> = {};
    for (let k = 0; k < 300; k++) labels[String(k * 5)] = `region ${k}`;
    const root = await atlasDataset('toomany', labels, (i) => (i % 3) * 5);
    let err: unknown;
    try {
      await loadDatasetCases(root);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expect((err as DatasetError).code).toBe('BAD_DATASET_JSON');
    expect((err as DatasetError).message).toMatch(/300 label codes, more than the 255 classes a model holds; merge regions/);
    expect(JSON.parse(await readFile(join(root, 'dataset.json'), 'utf8')).name).toBe('toomany');
  });
});
