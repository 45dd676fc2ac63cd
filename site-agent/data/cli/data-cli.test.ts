import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from 'vitest';
import { generatePhantomVolume } from '../../../simulations/phantoms/index.ts';
import { writeDecathlonDataset } from '../dataset/index.ts';
import { encodeNifti, geometryFromSpacing, writeNifti } from '../nifti/index.ts';
import { checkPath, inspectNifti, registerDataCommands } from './index.ts';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-cli-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});
afterEach(() => {
  vi.restoreAllMocks();
  process.exitCode = undefined;
});

async function run(args: string[]): Promise<{ out: string; err: string; code: number | string | undefined }> {
  let out = '';
  let err = '';
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out += String(s);
    return true;
  });
  vi.spyOn(process.stderr, 'write').mockImplementation((s: string | Uint8Array) => {
    err += String(s);
    return true;
  });
  const program = new Command().exitOverride();
  registerDataCommands(program);
  process.exitCode = undefined;
  await program.parseAsync(['node', 'fedsfda', ...args]);
  const code = process.exitCode;
  vi.restoreAllMocks();
  return { out, err, code };
}

const dims: [number, number, number] = [12, 10, 4];
const like = geometryFromSpacing(dims, [1, 1, 2]);
function phantom(seed: number) {
  return generatePhantomVolume({ seed, dims, spacing: [1, 1, 2], numClasses: 4, shift: 'scanner-a' });
}

describe('fedsfda data check', () => {
  it('passes a good dataset with exit code 0 and lists a bad one per file with exit code 1', async () => {
    const root = join(dir, 'ds');
    await writeDecathlonDataset(root, { name: 't', labels: { 0: 'bg', 1: 'a', 2: 'b', 3: 'c' } }, [0, 1].map((i) => ({ id: `c${i}`, image: phantom(i).image, label: phantom(i).label, like })));
    const good = await run(['data', 'check', root]);
    expect(good.code).toBe(0);
    expect(good.out).toMatch(/OK: .* 2\/2 training case/);

    // Break it: an empty image file and a truncated label.
    await writeFile(join(root, 'imagesTr', 'c0.nii.gz'), new Uint8Array(0));
    const lab = encodeNifti('l', phantom(1).label, like, { gzip: true });
    await writeFile(join(root, 'labelsTr', 'c1.nii.gz'), lab.subarray(0, 30));
    const bad = await run(['data', 'check', root, '--json']);
    expect(bad.code).toBe(1);
    const report = JSON.parse(bad.out);
    expect(report.ok).toBe(false);
    expect(report.usableCases).toBe(0);
    const byFile = Object.fromEntries(report.files.map((f: { file: string; problems: Array<{ code: string }> }) => [f.file.split('/').slice(-2).join('/'), f.problems.map((p) => p.code)]));
    expect(byFile['imagesTr/c0.nii.gz']).toEqual(['EMPTY_FILE']);
    expect(byFile['labelsTr/c1.nii.gz']).toEqual(['TRUNCATED']);
    expect(byFile['imagesTr/c1.nii.gz']).toEqual([]);
  });

  it('checks single files, a directory named like a file and a missing path', async () => {
    const f = join(dir, 'one.nii.gz');
    await writeNifti(f, phantom(3).image, like);
    expect((await checkPath(f)).ok).toBe(true);
    const d = join(dir, 'dir.nii.gz');
    await mkdir(d);
    const r = await checkPath(d);
    expect(r.ok).toBe(false);
    expect(r.files[0].problems[0].code).toBe('NOT_A_FILE');
    expect((await checkPath(join(dir, 'missing.nii'))).files[0].problems[0].code).toBe('NOT_FOUND');
    const nd = await checkPath(join(dir, 'no-such-folder'));
    expect(nd.ok).toBe(false);
  });
});

describe('fedsfda data inspect', () => {
  it('prints dims, datatype, spacing, orientation, intensity range and label values', async () => {
    const f = join(dir, 'lab.nii');
    await writeNifti(f, phantom(4).label, like, { label: true });
    const { out, code } = await run(['data', 'inspect', f]);
    expect(code).toBeUndefined();
    expect(out).toMatch(/NIfTI-1, uint8/);
    expect(out).toMatch(/12 x 10 x 4/);
    expect(out).toMatch(/spacing: +1 x 1 x 2 mm/);
    expect(out).toMatch(/orientation: +RAS/);
    expect(out).toMatch(/label values: 4 distinct: 0 \(\d+\), 1/);
    const info = await inspectNifti(f);
    expect(info.intensity.min).toBe(0);
    expect(info.intensity.max).toBe(3);
    const nanFile = join(dir, 'nan.nii');
    const img = Float32Array.from(phantom(4).image);
    img[0] = Number.NaN;
    await writeNifti(nanFile, img, like);
    expect((await inspectNifti(nanFile)).intensity.nonFinite).toBe(1);
    const bad = await run(['data', 'inspect', join(dir, 'missing.nii')]);
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/NOT_FOUND/);
  });

  const example4d = '/usr/lib/python3/dist-packages/nibabel/tests/data/example4d.nii.gz';
  it.skipIf(!existsSync(example4d))("describes any volume of nibabel's example4d.nii.gz (Debian python3-nibabel)", async () => {
    for (const volume of ['0', '1']) {
      const { out, code } = await run(['data', 'inspect', example4d, '--volume', volume]);
      expect(code).toBeUndefined();
      expect(out).toMatch(new RegExp(`128 x 96 x 24 x 2 as stored \\(2 volumes; statistics of volume ${volume}\\)`));
    }
  });
});
