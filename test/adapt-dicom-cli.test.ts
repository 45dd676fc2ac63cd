/**
 * A new hospital whose scans are a bare DICOM export (series folders, no labels, no NIfTI anywhere) runs the real
 * `fedsfda adapt` on it from a directory outside the repository: every series is adapted on and gets a NIfTI
 * prediction in its own geometry (the DICOM affine), named series-001, ... and no header text reaches any output.
 */
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { execFile } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Command } from 'commander';
import { gunzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { registerAdaptCommands } from '../site-agent/adapt/index.ts';
import { dicom, nifti, writeDecathlonDataset, type DecathlonCase } from '../site-agent/data/index.ts';
import { dicomToolsAvailable, writeSeries } from '../site-agent/data/dicom/dicom-fixtures.ts';
import { initEngine } from '../site-agent/engine/index.ts';
import { createUNet, saveModel } from '../site-agent/model/index.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
const available = await dicomToolsAvailable();
const PATIENT = { patient_name: 'Doe^Jane', patient_id: 'PID-4711-SECRET', description: 'Jane Doe head scan' };
const FORBIDDEN = ['Doe', 'Jane', 'PID-4711', 'head scan'];

/** A bright disc (class 1) with a darker core (class 2) on a dark background, 16x16x2 voxels. */
function discCase(id: string, radius: number): DecathlonCase {
  const image = new Float32Array(16 * 16 * 2);
  const label = new Uint8Array(16 * 16 * 2);
  for (let i = 0; i < image.length; i++) {
    const r = Math.hypot((i % 16) - 7.5, (Math.floor(i / 16) % 16) - 7.5);
    label[i] = r < radius / 2 ? 2 : r < radius ? 1 : 0;
    image[i] = [10, 200, 120][label[i]] + (i % 5);
  }
  return { id, image, label, like: nifti.geometryFromSpacing([16, 16, 2], [1, 1, 3]) };
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-dicom-hospital-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.skipIf(!available)('fedsfda adapt on a bare DICOM folder (real CLI, outside the repository)', () => {
  it('adapts on every series and writes predictions in each series geometry, without header text', async () => {
    expect(dir.startsWith(fileURLToPath(new URL('..', import.meta.url)))).toBe(false);
    // The federation's side, in process: a model and a source statistics package.
    await initEngine();
    const unet = createUNet({ inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1, inputSize: [16, 16] }, 1);
    await saveModel(unet, join(dir, 'model'));
    unet.dispose();
    await writeDecathlonDataset(join(dir, 'source'), { name: 'source', labels: { 0: 'background', 1: 'disc', 2: 'core' } }, [discCase('s0', 5), discCase('s1', 6)]);
    const p = new Command().exitOverride();
    registerAdaptCommands(p);
    await p.parseAsync(['node', 'x', 'source-stats', '--model', join(dir, 'model'), '--data', join(dir, 'source'), '--out', join(dir, 'stats.json')]);

    // The hospital's export: two series in their own folders, one of them oblique.
    await writeSeries({ out: join(dir, 'pacs', 'study', 'ax'), rows: 16, cols: 16, slices: 3, seed: 1, ...PATIENT });
    await writeSeries({ out: join(dir, 'pacs', 'study', 'obl'), rows: 14, cols: 12, slices: 2, iop: [0.866025, 0.5, 0, -0.383022, 0.663414, 0.642788], seed: 2, ...PATIENT });

    const { stdout, stderr } = await run(process.execPath, [cli, 'adapt', '--model', 'model', '--source-stats', 'stats.json', '--data', 'pacs', '--method', 'adabn', '--size', '16', '--out', 'adapted'], { cwd: dir, timeout: 600_000 });
    const reportText = await readFile(join(dir, 'adapted', 'adapt-report.json'), 'utf8');
    expect((JSON.parse(reportText) as { cases: { target: string[] } }).cases.target).toEqual(['series-001', 'series-002']);
    expect((await readdir(join(dir, 'adapted', 'predictions'))).sort()).toEqual(['series-001.nii.gz', 'series-002.nii.gz']);
    for (const [k, folder] of ['ax', 'obl'].entries()) {
      const source = await dicom.readDicomSeries(join(dir, 'pacs', 'study', folder));
      const file = join(dir, 'adapted', 'predictions', `series-00${k + 1}.nii.gz`);
      const pred = await nifti.readNifti(file);
      expect(pred.dims).toEqual(source.dims);
      for (let i = 0; i < 3; i++) for (let j = 0; j < 4; j++) expect(Math.abs(pred.affine[i][j] - source.affine[i][j])).toBeLessThan(1e-4);
      expect(Math.max(...pred.data)).toBeLessThan(3);
      const bytes = Buffer.from(gunzipSync(new Uint8Array(await readFile(file)))).toString('latin1');
      for (const s of FORBIDDEN) expect(bytes).not.toContain(s);
    }
    for (const s of FORBIDDEN) for (const text of [stdout, stderr, reportText]) expect(text).not.toContain(s);
  });
});
