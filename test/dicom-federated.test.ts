/**
 * A hospital's data as DICOM trains in a federated run: two sites whose images are DICOM series written by pydicom
 * (labels as NIfTI on the series' grid, images/<case>/ + labels/<case>.nii.gz) run `fedsfda simulate` over real
 * processes and sockets; the rounds complete and no header text (the patient's name) appears in any output.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulationSummary } from '../simulations/runner/summary.ts';
import { generatePhantomVolume } from '../simulations/phantoms/index.ts';
import { dicomToolsAvailable, writeDicomCase } from '../site-agent/data/dicom/dicom-fixtures.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));
const available = await dicomToolsAvailable();

describe.skipIf(!available)('a DICOM dataset in a federated run', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-dicom-fed-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('two sites with DICOM images train two FedAvg rounds', async () => {
    const dims: [number, number, number] = [16, 16, 4];
    const sites = ['site-a', 'site-b'];
    for (const [s, site] of sites.entries()) {
      for (let c = 0; c < 3; c++) {
        const v = generatePhantomVolume({ seed: 40 + 10 * s + c, dims, spacing: [2, 2, 4], numClasses: 3, shift: s === 0 ? 'scanner-a' : 'scanner-b' });
        const image = v.image.map((x) => Math.max(0, x * 800 + 200));
        const id = `case${c}`;
        // Oblique at one site, axial at the other; a patient name in every header.
        const iop = s === 0 ? [1, 0, 0, 0, 1, 0] : [0.8660254, 0.5, 0, -0.5, 0.8660254, 0];
        await writeDicomCase(join(dir, site, 'images', id), join(dir, site, 'labels', `${id}.nii.gz`), { image, label: v.label, dims }, { iop, patient_name: 'Roe^Richard', seed: c });
      }
    }
    const scenario = {
      kind: 'federated',
      name: 'test: DICOM sites',
      seed: 5,
      data: { size: 16, numClasses: 3, slicesPerCase: 4, valFraction: 0.34 },
      sites: sites.map((id) => ({ id, dataDir: join(dir, id) })),
      model: { baseChannels: 4, depth: 1 },
      training: { rounds: 2, localEpochs: 2, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: 300000 },
    };
    const config = join(dir, 'scenario.json');
    await writeFile(config, JSON.stringify(scenario));
    const out = join(dir, 'out');
    const { stdout, stderr } = await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 780_000 });
    const summaryText = await readFile(join(out, 'summary.json'), 'utf8');
    const summary = JSON.parse(summaryText) as SimulationSummary;
    expect(summary.rounds.map((r) => r.round)).toEqual([1, 2]);
    expect(summary.rounds.every((r) => r.failures === 0)).toBe(true);
    expect(summary.rounds.every((r) => Number.isFinite(r.meanTrainLoss as number))).toBe(true);
    for (const s of summary.sites) expect(s.dice.mean).not.toBeNull();
    for (const text of [stdout, stderr, summaryText]) expect(text).not.toMatch(/Roe|Richard/);
  }, 900_000);
});
