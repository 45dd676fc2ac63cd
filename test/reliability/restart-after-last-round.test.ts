/**
 * Issue 11, item 2, with real processes: the coordinator is killed (SIGKILL) right after the checkpoint of the last
 * training round, while the run's artifacts are being produced. The coordinator restarted on the same checkpoint and
 * run folder waits for the sites (they are still retrying), runs the statistics rounds again over all of them, leaves
 * a complete folder (run.json names every file, no file of the killed attempt mixed in) and tells the sites the run
 * is finished, so they exit 0 instead of retrying forever.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, startToySites, stopAll, type Proc } from '../support/process-harness.ts';
import { expectCompleteToyRun } from '../support/run-folder.ts';

const procs: Proc[] = [];
let dir = '';
afterEach(async () => {
  await stopAll(procs.splice(0));
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('restart after the last training round', () => {
  it('waits for the sites, recomputes the statistics, completes the folder and releases the sites', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-restart-'));
    const c = await makeConsortium(dir, 3);
    const out = join(dir, 'run');
    await writeFile(
      join(dir, 'config.json'),
      JSON.stringify({ rounds: 2, minSites: 3, port: 0, checkpointDir: join(out, 'checkpoints'), statistics: { pixelBound: 1000 }, timeouts: { waitForSitesMs: 120_000 } }),
    );
    const args = coordinatorArgs(c, join(dir, 'config.json'), ['--out', out]);
    const first = startCoordinatorProcess(args);
    procs.push(first);
    const url = await coordinatorUrl(first);
    const sites = startToySites(c, url, { maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 500 });
    procs.push(...sites);
    await first.waitFor(/^round 2: aggregated/);
    first.kill('SIGKILL');
    expect(await first.exited).toBe('SIGKILL');

    const second = startCoordinatorProcess([...args, '--port', new URL(url).port]);
    procs.push(second);
    expect(await second.exited).toBe(0);
    expect(second.logs.some((l) => l.msg === 'resuming from checkpoint' && l.round === 2)).toBe(true);
    for (const s of sites) expect(await s.exited).toBe(0);
    for (const s of sites) expect(s.logs.some((l) => l.code === 'run_finished')).toBe(true);

    const manifest = await expectCompleteToyRun(out, 2);
    expect(manifest.round).toBe(2);
    const stats = JSON.parse(await readFile(join(out, 'source-stats.json'), 'utf8')) as { numSites: number; numClasses: number };
    expect(stats).toMatchObject({ numSites: 3, numClasses: 2 });
    const hist = JSON.parse(await readFile(join(out, 'class-histogram.json'), 'utf8')) as { numSites: number; pooledPixels: number[] };
    expect(hist.numSites).toBe(3);
    expect(hist.pooledPixels.reduce((a, b) => a + b, 0)).toBe(60); // 3 sites x 20 examples
  }, 600_000);

  it('a restart after the folder was complete releases the sites its killed predecessor had not told to finish', async () => {
    // Arrange: a finished run (its folder complete), then the same sites retrying as if the coordinator had been
    // killed between writing run.json and telling them `finish` (seen in reliability-kill: 1.5 s after the last file).
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-release-'));
    const c = await makeConsortium(dir, 3);
    const out = join(dir, 'run');
    await writeFile(join(dir, 'config.json'), JSON.stringify({ rounds: 1, minSites: 3, port: 0, checkpointDir: join(out, 'checkpoints'), timeouts: { waitForSitesMs: 60_000 } }));
    const args = coordinatorArgs(c, join(dir, 'config.json'), ['--out', out]);
    const first = startCoordinatorProcess(args);
    procs.push(first);
    const url = await coordinatorUrl(first);
    const firstSites = startToySites(c, url, { maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 500 });
    procs.push(...firstSites);
    expect(await first.exited).toBe(0);
    const manifest = await readFile(join(out, 'run.json'), 'utf8');
    // 30 attempts 0.1-0.3 s apart: without a release they give up (exit 1) within seconds.
    const sites = startToySites(c, url, { maxAttempts: 30, initialDelayMs: 100, maxDelayMs: 300 });
    procs.push(...sites);
    await Promise.all(sites.map((s) => s.waitFor(/no session with the coordinator/)));

    // Act: the supervisor restarts the coordinator on the same folder and port.
    const second = startCoordinatorProcess([...args, '--port', new URL(url).port]);
    procs.push(second);

    // Assert: it waits for them, tells each one `finish`, exits 0, and leaves the folder as it was.
    expect(await second.exited).toBe(0);
    expect(second.logs.some((l) => l.code === 'releasing_sites')).toBe(true);
    for (const s of sites) expect(await s.exited).toBe(0);
    for (const s of sites) expect(s.logs.some((l) => l.code === 'run_finished')).toBe(true);
    expect(await readFile(join(out, 'run.json'), 'utf8')).toBe(manifest);
  }, 120_000);
});
