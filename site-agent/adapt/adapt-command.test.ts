import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nifti, writeDecathlonDataset, type DecathlonCase } from '../data/index.ts';
import { initEngine } from '../engine/index.ts';
import { createUNet, saveModel } from '../model/index.ts';
import { registerAdaptCommands } from './adapt-command.ts';

const DIMS: [number, number, number] = [16, 16, 2];

/** A bright disc (class 1) with a darker core (class 2) on a dark background; `invert` flips the contrast. */
function discCase(id: string, radius: number, invert: boolean): DecathlonCase {
  const [X, Y, Z] = DIMS;
  const image = new Float32Array(X * Y * Z);
  const label = new Uint8Array(X * Y * Z);
  for (let z = 0; z < Z; z++) for (let y = 0; y < Y; y++) for (let x = 0; x < X; x++) {
    const r = Math.hypot(x - 7.5, y - 7.5);
    const cls = r < radius / 2 ? 2 : r < radius ? 1 : 0;
    const i = x + X * (y + Y * z);
    label[i] = cls;
    const v = [10, 200, 120][cls] + ((x * 7 + y * 3 + z) % 5);
    image[i] = invert ? 260 - v : v;
  }
  return { id, image, label, like: nifti.geometryFromSpacing(DIMS, [1, 1, 3]) };
}

let dir: string;

beforeAll(async () => {
  await initEngine();
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-adapt-cli-'));
  const unet = createUNet({ inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1, inputSize: [16, 16] }, 1);
  await saveModel(unet, join(dir, 'model'));
  unet.dispose();
  const labels = { 0: 'background', 1: 'disc', 2: 'core' };
  await writeDecathlonDataset(join(dir, 'source'), { name: 'source', labels }, [discCase('s0', 5, false), discCase('s1', 6, false)]);
  await writeDecathlonDataset(join(dir, 'target'), { name: 'target', labels }, [discCase('t0', 5, true), discCase('t1', 6, true), discCase('t2', 4, true)]);
  // The same target scans with no label file anywhere: a plain folder of images.
  await mkdir(join(dir, 'scans'));
  for (const f of await readdir(join(dir, 'target', 'imagesTr'))) await copyFile(join(dir, 'target', 'imagesTr', f), join(dir, 'scans', f));
});

afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

function program(): Command {
  const p = new Command().exitOverride();
  registerAdaptCommands(p);
  return p;
}

describe('fedsfda source-stats / adapt', () => {
  it('adapts on a folder of images without labels, writes NIfTI predictions, and scores only with --eval-labels', async () => {
    await program().parseAsync(['node', 'x', 'source-stats', '--model', join(dir, 'model'), '--data', join(dir, 'source'), '--out', join(dir, 's.json')]);
    expect((await readdir(join(dir, 'scans'))).sort()).toEqual(['t0.nii.gz', 't1.nii.gz', 't2.nii.gz']);
    await program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--out', join(dir, 'out')]);
    const report = JSON.parse(await readFile(join(dir, 'out', 'adapt-report.json'), 'utf8'));
    expect(report.method).toBe('adabn');
    expect(report.before).toBeUndefined();
    expect(report.cases.target).toEqual(['t0', 't1', 't2']);
    for (const id of ['t0', 't1', 't2']) {
      const pred = await nifti.readNifti(join(dir, 'out', 'predictions', `${id}.nii.gz`));
      expect(pred.dims).toEqual(DIMS);
      expect(Math.max(...pred.data)).toBeLessThan(3);
    }

    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn',
      '--data', join(dir, 'scans'), '--eval-labels', join(dir, 'target'), '--polarity-check', '--out', join(dir, 'out-e'),
    ]);
    const scored = JSON.parse(await readFile(join(dir, 'out-e', 'adapt-report.json'), 'utf8'));
    expect(scored.before.summary.numCases).toBe(3);
    expect(scored.after.summary.numCases).toBe(3);
    expect(scored.report.notes[0]).toMatch(/^input polarity [+-]1 \(input adapter \(K=2, 0 steps\): kept start [01] \((identity|negation)\); entropy after AdaBN per start \[identity [\d.]+, negation [\d.]+\]\)$/);
  });

  it('scores only the target cases the labelled copy holds', async () => {
    await mkdir(join(dir, 'partial-labels'));
    await writeDecathlonDataset(join(dir, 'partial-labels'), { name: 'p', labels: { 0: 'background', 1: 'disc', 2: 'core' } }, [discCase('t1', 6, true)]);
    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn',
      '--data', join(dir, 'scans'), '--eval-labels', join(dir, 'partial-labels'), '--out', join(dir, 'out-p'),
    ]);
    const report = JSON.parse(await readFile(join(dir, 'out-p', 'adapt-report.json'), 'utf8'));
    expect(report.before.perCase.map((c: { caseId: string }) => c.caseId)).toEqual(['t1']);
    expect(report.cases.unscored).toEqual(['t0', 't2']);
  });

  it('--input-adapter (--denoise) saves the fitted curve, with its pre-filter if one was chosen, next to the model and predicts through it; --labelled runs the few-label mean teacher', async () => {
    await program().parseAsync(['node', 'x', 'source-stats', '--model', join(dir, 'model'), '--data', join(dir, 'source'), '--out', join(dir, 's2.json')]);
    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's2.json'), '--method', 'adabn',
      '--data', join(dir, 'scans'), '--input-adapter', '--denoise', '--out', join(dir, 'out-a'),
    ]);
    const report = JSON.parse(await readFile(join(dir, 'out-a', 'adapt-report.json'), 'utf8'));
    expect(report.report.notes[0]).toMatch(/^input adapter \(K=8, 40 steps\): kept start .*; denoise: (no filter|Gaussian σ [0-9.]+ px)|^input polarity [+-]1/);
    if (report.report.inputCurve) {
      // (No curve when the safeguard fell back to the unadapted model.)
      expect(report.report.inputCurve.prefilter === undefined).toBe(/denoise: no filter/.test(report.report.notes[0]));
      const curve = JSON.parse(await readFile(join(dir, 'out-a', 'model', 'input-curve.json'), 'utf8'));
      expect(curve).toEqual(report.report.inputCurve);
      expect(curve.kind).toBe('fedsfda-intensity-curve');
    }
    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's2.json'), '--method', 'mean-teacher', '--epochs', '1',
      '--data', join(dir, 'scans'), '--labelled', join(dir, 'target'), '--out', join(dir, 'out-l'),
    ]);
    const few = JSON.parse(await readFile(join(dir, 'out-l', 'adapt-report.json'), 'utf8'));
    expect(few.report.method).toBe('mean-teacher+labels');
    expect(few.report.notes).toContain('few-label mode: 6 labelled target slices');
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's2.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--labelled', join(dir, 'target'), '--out', join(dir, 'o4')]),
    ).rejects.toMatchObject({ code: 'BAD_OPTION' });
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's2.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--input-adapter', '--polarity-check', '--out', join(dir, 'o5')]),
    ).rejects.toMatchObject({ code: 'BAD_OPTION' });
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's2.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--wide-search', '--out', join(dir, 'o6')]),
    ).rejects.toMatchObject({ code: 'BAD_OPTION' });
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's2.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--denoise', '--out', join(dir, 'o7')]),
    ).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringMatching(/--denoise .* with --input-adapter/) });
  });

  it('--input-adapter --bias-correction saves a version-3 curve that carries the correction; --bias-correction alone is refused', async () => {
    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn',
      '--data', join(dir, 'scans'), '--input-adapter', '--bias-correction', '--no-safeguard', '--out', join(dir, 'out-b'),
    ]);
    const report = JSON.parse(await readFile(join(dir, 'out-b', 'adapt-report.json'), 'utf8'));
    expect(report.report.notes[0]).toMatch(/^bias field corrected in \d+ of 3 group\(s\)/);
    const curve = JSON.parse(await readFile(join(dir, 'out-b', 'model', 'input-curve.json'), 'utf8'));
    expect(curve.version).toBe(3);
    expect(curve.biasCorrection.kind).toBe('entropy-polynomial');
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--bias-correction', '--out', join(dir, 'o8')]),
    ).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringMatching(/--bias-correction .* with --input-adapter/) });
  });

  it('--input-adapter --band-permutations runs the band-order search and says what it chose; --band-permutations alone is refused', async () => {
    await program().parseAsync([
      'node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn',
      '--data', join(dir, 'scans'), '--input-adapter', '--band-permutations', '--no-safeguard', '--out', join(dir, 'out-p'),
    ]);
    const report = JSON.parse(await readFile(join(dir, 'out-p', 'adapt-report.json'), 'utf8'));
    expect(report.report.notes[0]).toMatch(/; band permutations \(M=\d+, band means .*\): (kept the pick|took \[[0-9,]+\]), /);
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--band-permutations', '--out', join(dir, 'o9')]),
    ).rejects.toMatchObject({ code: 'BAD_OPTION', message: expect.stringMatching(/--band-permutations .* with --input-adapter/) });
  });

  it('refuses an unknown method, and eval labels that share no case with the target, with typed errors', async () => {
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'magic', '--data', join(dir, 'scans'), '--out', join(dir, 'o2')]),
    ).rejects.toMatchObject({ code: 'UNKNOWN_METHOD' });
    await expect(
      program().parseAsync(['node', 'x', 'adapt', '--model', join(dir, 'model'), '--source-stats', join(dir, 's.json'), '--method', 'adabn', '--data', join(dir, 'scans'), '--eval-labels', join(dir, 'source'), '--out', join(dir, 'o3')]),
    ).rejects.toMatchObject({ code: 'BAD_SHAPE' });
  });
});
