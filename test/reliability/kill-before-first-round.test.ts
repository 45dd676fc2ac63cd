/**
 * Issue 11, kill points, with real processes on 127.0.0.1: the coordinator is killed (SIGKILL) several times in a
 * row before round 1 completes, as a supervisor restarting it quickly would see, and the run must still end with a
 * complete folder and every site released with exit 0.
 *
 * The kills that broke it (scripts/reliability-kill.ts, 2 of 14 runs ending after ~720 s without run.json): a site
 * whose connection attempt was in the window between its websocket opening and socket.io's namespace handshake
 * answering, when the coordinator died, waited forever (socket.io-client reports that close as `disconnect` only
 * and drops its connect timer); with nothing else to wait on, the site process exited 0 in the middle of the run,
 * and the restarted coordinator waited for it in vain. A random kill hits that window only now and then, so two of
 * the kills here are made in it on purpose: a stand-in holds every site's attempt in the window
 * (test/support/stalled-coordinator-process.ts) and is killed; the others are real coordinators killed as soon as
 * the first site connected and in the middle of round 1.
 */
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, startStalledCoordinator, startToySites, stopAll, type Proc } from '../support/process-harness.ts';
import { expectCompleteToyRun } from '../support/run-folder.ts';

const procs: Proc[] = [];
let dir = '';
afterEach(async () => {
  await stopAll(procs.splice(0));
  if (dir) await rm(dir, { recursive: true, force: true });
});

/** Rejects as soon as a site exits without having been told the run is finished: the failure under test. */
function siteExitsEarly(sites: Proc[]): Promise<never> {
  return Promise.race(
    sites.map(
      (s, i) =>
        new Promise<never>((_resolve, reject) => {
          void s.exited.then((code) => {
            if (!s.logs.some((l) => l.code === 'run_finished')) reject(new Error(`site-${i + 1} exited (${code}) before the run finished; its last lines: ${s.lines.slice(-3).join(' | ')}`));
          });
        }),
    ),
  );
}

async function killNow(p: Proc): Promise<void> {
  p.kill('SIGKILL');
  expect(await p.exited).toBe('SIGKILL');
}

describe('kill -9 of the coordinator several times before round 1 completes', () => {
  it('ends with a complete run folder and every site released with exit 0', async () => {
    dir = await mkdtemp(join(tmpdir(), 'fedsfda-kill-early-'));
    const c = await makeConsortium(dir, 3);
    const out = join(dir, 'run');
    const config = { rounds: 2, minSites: 3, port: 0, checkpointDir: join(out, 'checkpoints'), statistics: { pixelBound: 1000 }, timeouts: { waitForSitesMs: 60_000 } };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const args = coordinatorArgs(c, join(dir, 'config.json'), ['--out', out]);
    const restart = (): Proc => {
      const p = startCoordinatorProcess([...args, '--port', String(port)]);
      procs.push(p);
      return p;
    };
    const stall = async (): Promise<void> => {
      const s = startStalledCoordinator(port);
      procs.push(s);
      // Every site's attempt is in the window (each waits there; none is backing off) when this one dies.
      await Promise.race([s.waitFor(/^pending 3$/), siteExit]);
      await killNow(s);
    };

    // Kill 1: the first coordinator, as soon as a site connected (round 1 needs all three: it has not started).
    const first = startCoordinatorProcess(args);
    procs.push(first);
    const url = await coordinatorUrl(first);
    const port = Number(new URL(url).port);
    const sites = startToySites(c, url, { maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 500 });
    procs.push(...sites);
    const siteExit = siteExitsEarly(sites);
    siteExit.catch(() => {});
    await Promise.race([first.waitFor(/^site site-\d connected/), siteExit]);
    await killNow(first);
    // Kill 2: a coordinator that dies with every site between its websocket and socket.io's handshake.
    await stall();
    // Kill 3: a restarted coordinator killed in the middle of round 1.
    const second = restart();
    await Promise.race([second.waitFor(/^round started/), siteExit]);
    await killNow(second);
    // Kill 4: the window again, right before the restart that finishes the run.
    await stall();

    const last = restart();
    expect(await Promise.race([last.exited, siteExit])).toBe(0);
    for (const s of sites) expect(await s.exited).toBe(0);
    for (const s of sites) expect(s.logs.some((l) => l.code === 'run_finished')).toBe(true);
    // The retries of the window were logged with their typed cause.
    expect(sites.some((s) => s.logs.some((l) => l.code === 'connection_closed'))).toBe(true);

    await expectCompleteToyRun(out, 2);
    expect((await readdir(out)).sort()).toEqual(['checkpoints', 'class-histogram.json', 'final-weights.fsws', 'history.json', 'run.json', 'source-stats.json']);
  }, 90_000);
});
