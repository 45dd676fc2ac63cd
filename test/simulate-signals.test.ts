/**
 * Ctrl-C on `fedsfda simulate`, with real processes: SIGINT (or SIGTERM) to the simulate process alone stops the
 * coordinator and every site process (none left running, the coordinator's port closed), writes a partial
 * summary.json marked interrupted with the rounds completed so far, and exits 130 — during the rounds, while the run
 * folder is prepared (before any process starts) and during the statistics rounds after the last round. A second
 * signal kills every process at once and exits 130 without waiting for a summary.
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
import { STAGE_BOUND_MS } from './support/bounds.ts';

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

/** `fedsfda simulate` as a child; `until(re)` resolves with the first stdout/stderr line matching `re` from now on. */
function simulate(config: string, out: string): { child: ReturnType<typeof spawn>; exited: Promise<number | null>; until: (re: RegExp) => Promise<string>; output: () => string } {
  const child = spawn(process.execPath, [cli, 'simulate', '--config', config, '--out', out], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, NO_COLOR: '1' } });
  let output = '';
  const waiters: { re: RegExp; resolve: (l: string) => void }[] = [];
  const onLine = (line: string): void => {
    output += `${line}\n`;
    for (const w of [...waiters]) if (w.re.test(line)) (waiters.splice(waiters.indexOf(w), 1), w.resolve(line));
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const until = (re: RegExp): Promise<string> =>
    new Promise((resolve, reject) => {
      waiters.push({ re, resolve });
      void exited.then((code) => reject(new Error(`simulate exited (${code}) before printing ${String(re)}:\n${output}`)));
    });
  return { child, exited, until, output: () => output };
}

const exists = (f: string): Promise<boolean> => readFile(f).then(() => true, () => false);

/** Three sites (the statistics rounds after the last round need three); data built from mricron-data first. */
function phaseScenario(dir: string): object {
  return {
    kind: 'federated',
    name: 'test: interrupted in a phase',
    seed: 7,
    prepare: { kind: 'mricron', out: join(dir, 'mricron'), sites: 3, casesPerSite: 6, slabSlices: 4, downsample: 2 },
    data: { size: 16, numClasses: 4, slicesPerCase: 4, valFraction: 0.34 },
    sites: [1, 2, 3].map((i) => ({ id: `site-${i}`, dataDir: join(dir, 'mricron', `site-${i}`) })),
    model: { baseChannels: 2, depth: 1 },
    training: { rounds: 1, localEpochs: 1, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: STAGE_BOUND_MS },
  };
}

describe('fedsfda simulate interrupted in each phase', () => {
  it('SIGINT while the run folder is prepared (datasets being built): no process started, summary interrupted, exit 130', async () => {
    const sub = join(dir, 'prep');
    const config = join(dir, 'prep.json');
    await writeFile(config, JSON.stringify(phaseScenario(sub)));
    const out = join(sub, 'out');
    const run = simulate(config, out);
    await run.until(/building 3 mricron site datasets/);
    run.child.kill('SIGINT');
    expect(await run.exited, run.output()).toBe(130);
    expect(run.output()).toContain('interrupted while preparing: no process was started');
    expect(await exists(join(out, 'job.json'))).toBe(false);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.interrupted).toBe(true);
    expect(summary.rounds).toEqual([]);
  });

  it('a second SIGINT does not wait: every process killed at once, exit 130, no summary', async () => {
    const sub = join(dir, 'twice');
    const config = join(dir, 'twice.json');
    await writeFile(config, JSON.stringify(phaseScenario(sub)));
    const out = join(sub, 'out');
    const run = simulate(config, out);
    await run.until(/building 3 mricron site datasets/);
    run.child.kill('SIGINT');
    await run.until(/"code":"INTERRUPTED"/);
    run.child.kill('SIGINT');
    expect(await run.exited, run.output()).toBe(130);
    expect(run.output()).toMatch(/"code":"FORCE_STOP"/);
    // The first signal's path would have written a summary after the build; the forced stop did not wait for it.
    expect(await exists(join(out, 'summary.json'))).toBe(false);
    expect(await processesMentioning(join(out, 'job.json'))).toEqual([]);
  });

  it('a second SIGINT while the sites start: every child killed (none left), exit 130', async () => {
    const config = join(dir, 'twice-children.json');
    await writeFile(config, JSON.stringify({ ...scenario, name: 'test: twice while starting' }));
    const out = join(dir, 'twice-children-out');
    const run = simulate(config, out);
    const line = await run.until(/coordinator listening on/);
    const port = Number(/:(\d+)/.exec(line.slice(line.indexOf('127.0.0.1')))![1]);
    run.child.kill('SIGINT');
    await run.until(/"code":"INTERRUPTED"/);
    run.child.kill('SIGINT');
    expect(await run.exited, run.output()).toBe(130);
    expect(run.output()).toMatch(/"code":"FORCE_STOP"/);
    expect(await processesMentioning(join(out, 'job.json'))).toEqual([]);
    expect(await portOpen(port)).toBe(false);
  });

  it('SIGTERM during the statistics rounds after the last round: children stopped, summary interrupted with every round, exit 130', async () => {
    const sub = join(dir, 'stats');
    const config = join(dir, 'stats.json');
    await writeFile(config, JSON.stringify(phaseScenario(sub)));
    const out = join(sub, 'out');
    const run = simulate(config, out);
    const line = await run.until(/coordinator listening on/);
    const port = Number(/:(\d+)/.exec(line.slice(line.indexOf('127.0.0.1')))![1]);
    await run.until(/round 1 done/); // the last round: the coordinator now runs the masked-sum statistics rounds
    run.child.kill('SIGTERM');
    expect(await run.exited, run.output()).toBe(130);
    expect(run.output()).not.toContain('pooled source statistics');
    expect(await processesMentioning(join(out, 'job.json'))).toEqual([]);
    expect(await portOpen(port)).toBe(false);
    const summary = JSON.parse(await readFile(join(out, 'summary.json'), 'utf8')) as SimulationSummary;
    expect(summary.interrupted).toBe(true);
    expect(summary.rounds.map((r) => r.round)).toEqual([1]);
  });
});
