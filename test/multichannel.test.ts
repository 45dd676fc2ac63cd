/**
 * Two input contrasts per case, end to end: phantom datasets written nnU-Net style (`_0000`, `_0001`, modality map)
 * feed a federated run whose U-Net takes 2 input channels (3 sites, so the pooled source statistics are written),
 * then `fedsfda adapt` adapts that model, source-free, to a 4th site's two-contrast data and writes NIfTI predictions.
 * (simulations/scenarios/mricron-multichannel.json is the same on real T1 anatomy with a simulated T2-like channel.)
 */
import { execFile } from 'node:child_process';
import { access, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulationSummary } from '../simulations/runner/summary.ts';
import { writePhantomDatasets } from '../simulations/phantoms/index.ts';
import { loadSiteDataset } from '../site-agent/data/dataset/index.ts';
import { loadModel } from '../site-agent/model/index.ts';

const run = promisify(execFile);
const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));

describe('multi-channel input (two contrasts per case)', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-2ch-'));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('trains a 2-channel U-Net over 3 sites and adapts it to a 4th site', async () => {
    const data = join(dir, 'data');
    await writePhantomDatasets({ out: data, sites: 4, casesPerSite: 3, dims: [16, 16, 4], spacing: [2, 2, 4], numClasses: 3, contrasts: 2, seed: 7 });
    expect((await readdir(join(data, 'site-1', 'imagesTr'))).slice(0, 2)).toEqual(['site1_case000_0000.nii.gz', 'site1_case000_0001.nii.gz']);
    const site = await loadSiteDataset(join(data, 'site-1'), { size: 16 });
    expect(site.dataset.channels).toBe(2);
    expect(site.loaded.modalities).toEqual(['phantom contrast 1', 'phantom contrast 2']);
    // The two channels are different contrasts of the same anatomy, normalised separately.
    const px = site.dataset.height * site.dataset.width;
    let differ = 0;
    for (let i = 0; i < px; i++) if (Math.abs(site.dataset.images[2 * i] - site.dataset.images[2 * i + 1]) > 0.1) differ++;
    expect(differ).toBeGreaterThan(px / 10);

    const scenario = {
      kind: 'federated',
      name: 'test: two contrasts',
      seed: 4,
      data: { size: 16, numClasses: 3, slicesPerCase: 4, valFraction: 0.34, channels: 2 },
      sites: [1, 2, 3].map((i) => ({ id: `site-${i}`, dataDir: join(data, `site-${i}`) })),
      model: { baseChannels: 4, depth: 1 },
      training: { rounds: 2, localEpochs: 2, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: 300000 },
    };
    const config = join(dir, 'scenario.json');
    await writeFile(config, JSON.stringify(scenario));
    const out = join(dir, 'out');
    await run(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { timeout: 780_000 });
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.rounds.every((r) => r.failures === 0)).toBe(true);
    expect(summary.artifacts.model).toBe('model');
    expect(summary.artifacts.sourceStats).not.toBeNull();
    const model = await loadModel(join(out, 'model'));
    expect(model.config.inChannels).toBe(2);
    model.dispose();

    const adapted = join(dir, 'adapted');
    const args = ['adapt', '--model', join(out, 'model'), '--source-stats', join(out, summary.artifacts.sourceStats!), '--data', join(data, 'site-4'), '--method', 'adabn', '--out', adapted];
    await run(process.execPath, [cli, ...args], { timeout: 300_000 });
    const preds = await readdir(join(adapted, 'predictions'));
    expect(preds).toEqual(['site4_case000.nii.gz', 'site4_case001.nii.gz', 'site4_case002.nii.gz']);
    await access(join(adapted, 'model', 'model.json'));
  }, 1_200_000);
});
