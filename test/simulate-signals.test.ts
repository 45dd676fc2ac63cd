/**
 * Ctrl-C on `fedsfda simulate`, with real processes: SIGINT (or SIGTERM) to the simulate process alone stops the
 * coordinator and every site process (none left running, the coordinator's port closed), writes a partial
 * summary.json marked interrupted with the rounds completed so far, and exits 130.
 */
import { spawn } from 'node:child_process';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { SimulationSummary } from '../simulations/runner/index.ts';

const cli = fileURLToPath(new URL('../bin/fedsfda.mjs', import.meta.url));

/** Enough rounds that the run is still going when the test interrupts it after round 1. */
const scenario = {
  kind: 'federated',
  name: 'test: interrupted',
  seed: 5,
  data: { size: 16, numClasses: 3, slicesPerCase: 2, valFraction: 0.5 },
  sites: [
    { id: 'site-x', shift: 'scanner-a', numCases: 2 },
    { id: 'site-y', shift: 'scanner-b', numCases: 2 },
  ],
  model: { baseChannels: 2, depth: 1 },
  training: { rounds: 500, localEpochs: 1, batchSize: 2, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: 120000 },
};

/** Pids of running processes whose command line mentions `needle` (the run's job file). */
async function processesMentioning(needle: string): Promise<number[]> {
  const pids: number[] = [];
  for (const entry of await readdir('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const cmdline = await readFile(`/proc/${entry}/cmdline`, 'utf8').catch(() => '');
    if (cmdline.includes(needle)) pids.push(Number(entry));
  }
  return pids;
}

function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'fedsfda-sigint-'));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe.each(['SIGINT', 'SIGTERM'] as const)('fedsfda simulate interrupted by %s', (signal) => {
  it('stops every child, frees the port, writes a partial summary marked interrupted and exits 130', async () => {
    const config = join(dir, `${signal}.json`);
    await writeFile(config, JSON.stringify(scenario));
    const out = join(dir, `${signal}-out`);
    const child = spawn(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
    // Barrier: the coordinator's port, then the end of round 1.
    let port = 0;
    await new Promise<void>((resolve, reject) => {
      createInterface({ input: child.stdout }).on('line', (line) => {
        const m = /coordinator listening on https?:\/\/127\.0\.0\.1:(\d+)/.exec(line);
        if (m) port = Number(m[1]);
        if (/round 1 done/.test(line)) resolve();
      });
      void exited.then((code) => reject(new Error(`simulate exited (${code}) before round 1 ended: ${stderr}`)));
    });
    const jobFile = join(out, 'job.json');
    expect((await processesMentioning(jobFile)).length).toBe(3); // the coordinator and two sites
    expect(await portOpen(port)).toBe(true);

    child.kill(signal);
    expect(await exited).toBe(130);
    expect(await processesMentioning(jobFile)).toEqual([]);
    expect(await portOpen(port)).toBe(false);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.interrupted).toBe(true);
    expect(summary.rounds.length).toBeGreaterThanOrEqual(1);
    expect(summary.rounds.length).toBeLessThan(scenario.training.rounds);
    expect(summary.sites.map((s) => s.id)).toEqual(['site-x', 'site-y']);
  });
});
