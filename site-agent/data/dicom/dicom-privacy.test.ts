/**
 * No DICOM header text leaves the reader: a patient's name, ID, birth date, study date, series description and
 * UIDs written into the files must not appear in anything fedsfda prints or writes while importing, checking,
 * inspecting or loading them (stdout, stderr, import-summary.json, the NIfTI files, error and warning messages).
 */
import { copyFile, mkdir, mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import { gunzipSync } from 'fflate';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { registerDataCommands } from '../cli/index.ts';
import { DatasetError, loadSiteDataset } from '../dataset/index.ts';
import { dicomToolsAvailable, PYDICOM_TEST_FILES, writeDicomCase, writeSeries } from './dicom-fixtures.ts';

const available = await dicomToolsAvailable();

const PATIENT = {
  patient_name: 'Doe^Jane^Quincy',
  patient_id: 'PID-4711-SECRET',
  birth_date: '19620315',
  study_date: '20261111',
  description: 'Jane Doe head scan',
  series_uid: '1.2.826.0.1.3680043.8.498.4242424242',
};
/** Any of these in an output is a leak (the name's parts, the ID, the dates, the description, the UID). */
const FORBIDDEN = ['Doe', 'Jane', 'Quincy', 'PID-4711', '19620315', '20261111', 'head scan', '4242424242'];

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-dicom-privacy-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

async function run(args: string[]): Promise<string> {
  let out = '';
  const capture = (s: string | Uint8Array): boolean => {
    out += String(s);
    return true;
  };
  vi.spyOn(process.stdout, 'write').mockImplementation(capture);
  vi.spyOn(process.stderr, 'write').mockImplementation(capture);
  const log = vi.spyOn(console, 'log').mockImplementation((...a: unknown[]) => capture(a.join(' ')));
  const warn = vi.spyOn(console, 'warn').mockImplementation((...a: unknown[]) => capture(a.join(' ')));
  try {
    const program = new Command().exitOverride();
    registerDataCommands(program);
    await program.parseAsync(['node', 'fedsfda', ...args]);
  } finally {
    vi.restoreAllMocks();
    void log;
    void warn;
    process.exitCode = undefined;
  }
  return out;
}

async function filesText(folder: string): Promise<string> {
  let text = '';
  for (const e of await readdir(folder, { withFileTypes: true, recursive: true })) {
    if (!e.isFile()) continue;
    const bytes = await readFile(join(e.parentPath, e.name));
    text += Buffer.from(e.name.endsWith('.gz') ? gunzipSync(bytes) : bytes).toString('latin1');
  }
  return text;
}

function expectNoLeak(what: string, text: string): void {
  for (const f of FORBIDDEN) expect(text.includes(f), `${what} contains "${f}"`).toBe(false);
}

describe.skipIf(!available)('DICOM header text never leaves the reader', () => {
  it('import-dicom, check, inspect and dataset loading print and write no names, IDs, dates or UIDs', async () => {
    const src = join(dir, 'export');
    const dims: [number, number, number] = [10, 9, 4];
    const n = dims[0] * dims[1] * dims[2];
    const vol = { image: Float32Array.from({ length: n }, (_, i) => 200 + (i % 37) * 10), label: Uint8Array.from({ length: n }, (_, i) => (i % 37 > 20 ? 1 : 0)), dims };
    // A good series, a tilted one (refused) and a JPEG 2000 file (skipped), all of the same patient.
    await writeDicomCase(join(src, 'images', 'case1'), join(src, 'labels', 'case1.nii.gz'), vol, PATIENT);
    await writeSeries({ out: join(src, 'images', 'case2'), slices: 4, tilt_mm: 0.4, ...PATIENT, series_uid: `${PATIENT.series_uid}.2` });
    await copyFile(join(src, 'labels', 'case1.nii.gz'), join(src, 'labels', 'case2.nii.gz'));
    await mkdir(join(src, 'images', 'case1', 'extra'));
    await copyFile(join(PYDICOM_TEST_FILES, 'JPEG2000.dcm'), join(src, 'images', 'case1', 'extra', 'j2k.dcm'));

    const out = join(dir, 'imported');
    const printed = [
      await run(['data', 'import-dicom', join(src, 'images'), '--out', out]),
      await run(['data', 'import-dicom', join(src, 'images'), '--out', join(dir, 'imported-json'), '--json']),
      await run(['data', 'check', src]),
      await run(['data', 'check', src, '--json']),
      await run(['data', 'inspect', join(out, 'series-001.nii.gz')]),
    ].join('\n');
    // The commands did their job (so the absence of leaks means something): one series written, one refused.
    expect(printed).toMatch(/ok +series 1 \(4 slices\)/);
    expect(printed).toMatch(/GANTRY_TILT/);
    expect(printed).toMatch(/UNSUPPORTED_TRANSFER_SYNTAX/);
    expectNoLeak('printed output', printed);
    expectNoLeak('written files', await filesText(out));
    expectNoLeak('written files (json run)', await filesText(join(dir, 'imported-json')));

    let err: unknown;
    try {
      await loadSiteDataset(src, { size: 8 });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DatasetError);
    expectNoLeak('dataset error', String((err as Error).message));
    const site = await loadSiteDataset(src, { size: 8, skipBad: true });
    expect(site.dataset.n).toBe(4);
    expectNoLeak('dataset warnings and problems', JSON.stringify([site.warnings, site.loaded.problems]));
  });
});
