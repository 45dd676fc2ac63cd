/**
 * A new hospital's path through the real CLI, started from a directory outside the repository: scans with no label
 * file anywhere (a plain folder of images, a Decathlon folder with only imagesTs/, a Decathlon dataset whose
 * labelsTr/ is gone) are adapted with `fedsfda adapt`; labels enter only through `--eval-labels`.
 */
import { execFile } from 'node:child_process';
import { copyFile, cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { nifti } from '../site-agent/data/index.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
let dir: string;
/** Runs the CLI with the temp folder as working directory; relative paths resolve there. */
const fedsfda = async (...args: string[]): Promise<string> => (await run(process.execPath, [cli, ...args], { cwd: dir, timeout: 600_000 })).stdout;

async function filesUnder(root: string): Promise<string[]> {
  return (await readdir(root, { recursive: true, withFileTypes: true })).filter((e) => e.isFile()).map((e) => join(e.parentPath, e.name));
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-new-hospital-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('fedsfda adapt on scans that have no labels (real CLI, outside the repository)', () => {
  it('adapts a folder of images, an imagesTs-only Decathlon folder and a dataset whose labels are absent', async () => {
    expect(dir.startsWith(fileURLToPath(new URL('..', import.meta.url)))).toBe(false);
    const small = ['--cases', '2', '--dims', '16,16,3', '--classes', '3'];
    await fedsfda('data', 'build-phantoms', '--out', 'source', '--sites', '1', ...small);
    await fedsfda('data', 'build-phantoms', '--out', 'target', '--sites', '1', ...small, '--scanners', 'mr-to-ct', '--seed', '7');
    await fedsfda('model', 'init', '--out', 'model', '--classes', '3', '--base', '4', '--depth', '1');
    await fedsfda('source-stats', '--model', 'model', '--data', 'source/site-1', '--size', '16', '--out', 'stats.json');
    const targetImages = (await readdir(join(dir, 'target', 'site-1', 'imagesTr'))).sort();
    expect(targetImages).toHaveLength(2);

    // 1. A plain folder of images.
    await mkdir(join(dir, 'scans'));
    for (const f of targetImages) await copyFile(join(dir, 'target', 'site-1', 'imagesTr', f), join(dir, 'scans', f));
    // 2. A Decathlon folder with only imagesTs/ (and a dataset.json that lists no training case).
    await mkdir(join(dir, 'ts-only', 'imagesTs'), { recursive: true });
    for (const f of targetImages) await copyFile(join(dir, 'target', 'site-1', 'imagesTr', f), join(dir, 'ts-only', 'imagesTs', f));
    await writeFile(join(dir, 'ts-only', 'dataset.json'), JSON.stringify({ name: 'new', labels: { 0: 'background', 1: 'a', 2: 'b' }, training: [], test: targetImages.map((f) => `./imagesTs/${f}`) }));
    // 3. A Decathlon dataset whose labels are absent (dataset.json still lists them).
    await cp(join(dir, 'target', 'site-1'), join(dir, 'no-labels'), { recursive: true });
    await rm(join(dir, 'no-labels', 'labelsTr'), { recursive: true });

    const cases = targetImages.map((f) => f.replace(/\.nii\.gz$/, ''));
    for (const data of ['scans', 'ts-only', 'no-labels']) {
      const files = await filesUnder(join(dir, data));
      expect(files.filter((f) => f.endsWith('.nii.gz'))).toHaveLength(2);
      expect(files.some((f) => /label/i.test(f.slice(join(dir, data).length)))).toBe(false);
      const out = `adapted-${data}`;
      await fedsfda('adapt', '--model', 'model', '--source-stats', 'stats.json', '--data', data, '--method', 'tent', '--epochs', '1', '--size', '16', '--out', out);
      const report = JSON.parse(await readFile(join(dir, out, 'adapt-report.json'), 'utf8')) as { cases: { target: string[] }; before?: unknown };
      expect(report.cases.target).toEqual(cases);
      expect(report.before).toBeUndefined();
      for (const c of cases) {
        const pred = await nifti.readNifti(join(dir, out, 'predictions', `${c}.nii.gz`));
        expect(pred.dims).toEqual([16, 16, 3]);
      }
    }

    // Labels only to score: before and after on the labelled copy of the same scans.
    const stdout = await fedsfda('adapt', '--model', 'model', '--source-stats', 'stats.json', '--data', 'scans', '--method', 'adabn',
      '--eval-labels', 'target/site-1', '--size', '16', '--out', 'adapted-scored');
    expect(stdout).toMatch(/^before: Dice [\d.]+/m);
    expect(stdout).toMatch(/^after : Dice [\d.]+/m);
    const scored = JSON.parse(await readFile(join(dir, 'adapted-scored', 'adapt-report.json'), 'utf8')) as { before: { summary: { numCases: number } } };
    expect(scored.before.summary.numCases).toBe(2);
  });
});
