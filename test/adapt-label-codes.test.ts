/**
 * The source's label codes reach a new hospital's predictions: a source dataset whose labels are sparse codes
 * (dataset.json lists 5, 17, 300) gives a source statistics package that records them, and `fedsfda adapt` writes
 * its predictions with those codes; a package without codes (as the coordinator's pooled one) takes them from
 * `--label-table dataset.json`. Tables that do not fit the model, or packages that disagree, are refused.
 */
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AdaptError, loadSourceStats, parseSourceStats, poolSourceStats, registerAdaptCommands, saveSourceStats } from '../site-agent/adapt/index.ts';
import { nifti } from '../site-agent/data/index.ts';
import { initEngine } from '../site-agent/engine/index.ts';
import { createUNet, saveModel } from '../site-agent/model/index.ts';

const DIMS: [number, number, number] = [16, 16, 2];
const CODES = [5, 17, 300];
const like = nifti.geometryFromSpacing(DIMS, [1, 1, 3]);

/** A disc (code 17) with a core (code 300) on background (code 5). */
function disc(radius: number): { image: Float32Array; label: Float32Array } {
  const n = DIMS[0] * DIMS[1] * DIMS[2];
  const image = new Float32Array(n);
  const label = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const r = Math.hypot((i % 16) - 7.5, (Math.floor(i / 16) % 16) - 7.5);
    const k = r < radius / 2 ? 2 : r < radius ? 1 : 0;
    label[i] = CODES[k];
    image[i] = [10, 200, 120][k] + (i % 5);
  }
  return { image, label };
}

let dir: string;
const adaptCli = async (...args: string[]): Promise<void> => {
  const p = new Command().exitOverride();
  registerAdaptCommands(p);
  await p.parseAsync(['node', 'x', ...args]);
};

beforeAll(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-label-codes-'));
  const unet = createUNet({ inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1, inputSize: [16, 16] }, 1);
  await saveModel(unet, join(dir, 'model'));
  unet.dispose();
  const training = [];
  for (const [k, r] of [5, 6].entries()) {
    const { image, label } = disc(r);
    await nifti.writeNifti(join(dir, 'source', 'imagesTr', `s${k}.nii.gz`), image, like, { datatype: 'float32' });
    await nifti.writeNifti(join(dir, 'source', 'labelsTr', `s${k}.nii.gz`), label, like, { datatype: 'int16', label: true });
    training.push({ image: `./imagesTr/s${k}.nii.gz`, label: `./labelsTr/s${k}.nii.gz` });
  }
  await writeFile(join(dir, 'source', 'dataset.json'), JSON.stringify({ name: 'atlas', labels: { 5: 'background', 17: 'disc', 300: 'core' }, training }));
  await mkdir(join(dir, 'scans'));
  for (const [k, r] of [4, 7].entries()) await nifti.writeNifti(join(dir, 'scans', `t${k}.nii.gz`), disc(r).image, like, { datatype: 'float32' });
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function predictionValues(out: string): Promise<{ values: Set<number>; datatype: string; report: { labelCodes: number[] } }> {
  const values = new Set<number>();
  let datatype = '';
  for (const id of ['t0', 't1']) {
    const p = await nifti.readNifti(join(out, 'predictions', `${id}.nii.gz`));
    datatype = p.datatype;
    for (const v of p.data) values.add(v);
  }
  return { values, datatype, report: JSON.parse(await readFile(join(out, 'adapt-report.json'), 'utf8')) as { labelCodes: number[] } };
}

describe("the source's label codes in a new hospital's predictions", () => {
  it('records the codes in the source package and writes predictions with them', async () => {
    await adaptCli('source-stats', '--model', join(dir, 'model'), '--data', join(dir, 'source'), '--out', join(dir, 'stats.json'));
    const stats = await loadSourceStats(join(dir, 'stats.json'));
    expect(stats.labelCodes).toEqual(CODES);
    await adaptCli('adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 'stats.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--out', join(dir, 'out'));
    const { values, datatype, report } = await predictionValues(join(dir, 'out'));
    expect(report.labelCodes).toEqual(CODES);
    expect(datatype).toBe('uint16');
    expect([...values].every((v) => CODES.includes(v))).toBe(true);

    // A package without codes (the coordinator's pooled one): the table comes from --label-table.
    const { labelCodes: _dropped, ...plain } = stats;
    await saveSourceStats(plain, join(dir, 'plain.json'));
    await adaptCli('adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 'plain.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--label-table', join(dir, 'source', 'dataset.json'), '--out', join(dir, 'out-labels'));
    const viaLabels = await predictionValues(join(dir, 'out-labels'));
    expect(viaLabels.report.labelCodes).toEqual(CODES);
    expect([...viaLabels.values].sort((a, b) => a - b)).toEqual([...values].sort((a, b) => a - b));
    // Without either, class indices.
    await adaptCli('adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 'plain.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--out', join(dir, 'out-plain'));
    const indices = await predictionValues(join(dir, 'out-plain'));
    expect(indices.report.labelCodes).toEqual([0, 1, 2]);
    expect([...indices.values].every((v) => v <= 2)).toBe(true);
  });

  it('refuses a label table that does not fit the model, and packages with different codes', async () => {
    await writeFile(join(dir, 'four.json'), JSON.stringify({ labels: { 0: 'background', 1: 'a', 2: 'b', 3: 'c' } }));
    const err = await adaptCli('adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 'stats.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--label-table', join(dir, 'four.json'), '--out', join(dir, 'never')).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(AdaptError);
    expect((err as AdaptError).message).toMatch(/lists 4 label codes, the model predicts 3 classes/);

    const stats = await loadSourceStats(join(dir, 'stats.json'));
    const { labelCodes: _dropped, ...plain } = stats;
    expect(() => poolSourceStats([stats, plain])).toThrow(/different label codes \(5, 17, 300 vs 0, 1, 2\)/);
    expect(poolSourceStats([stats, stats]).labelCodes).toEqual(CODES);
    expect(() => parseSourceStats({ ...stats, labelCodes: [5, 17] })).toThrow(/labelCodes: expected 3 codes/);
    expect(() => parseSourceStats({ ...stats, labelCodes: [17, 5, 300] })).toThrow(/strictly increasing/);
  });
});
