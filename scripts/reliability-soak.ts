/**
 * Soak (issue 11): the `fedsfda coordinator` CLI runs `--rounds` secure-aggregation rounds (SecAgg+) with `--sites`
 * toy sites (test/support/toy-trainer.ts, all in this process: the coordinator's memory is what is measured), and its
 * resident set is sampled from /proc every 500 ms. Reported: RSS after the warm-up rounds, at the end, the peak, and
 * the growth after warm-up (target < 50 MB), with the run's outcome.
 * Run: node --import tsx scripts/reliability-soak.ts [--sites 10] [--rounds 100] [--warmup 10]   (prints JSON)
 * Diagnosis: --snapshots-at 10,200 --snapshot-dir DIR writes a V8 heap snapshot of the coordinator when it reports
 * each of those rounds (SIGUSR2, --heapsnapshot-signal; a snapshot is taken after a full GC, so its size is the live
 * heap). Summarise one with scripts/heap-summary.ts.
 */
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadIdentity } from '../protocol/index.ts';
import { runSite } from '../site-agent/client/index.ts';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, stopAll, type Proc } from '../test/support/process-harness.ts';
import { ToyTrainer } from '../test/support/toy-trainer.ts';
import { intOption, scriptOptions } from './script-options.ts';

const SCRIPT = 'reliability-soak';
const o = scriptOptions(
  SCRIPT,
  {
    sites: { type: 'string', default: '10' },
    rounds: { type: 'string', default: '100' },
    warmup: { type: 'string', default: '10' },
    'snapshots-at': { type: 'string', default: '' },
    'snapshot-dir': { type: 'string', default: '.' },
  },
  '[--sites N] [--rounds N] [--warmup N] [--snapshots-at R1,R2,...] [--snapshot-dir DIR]',
);
const SNAPSHOTS_AT = o['snapshots-at'] ? o['snapshots-at'].split(',').map((r) => intOption(SCRIPT, 'snapshots-at', r, 1)) : [];
const SITES = intOption(SCRIPT, 'sites', o.sites, 1);
const ROUNDS = intOption(SCRIPT, 'rounds', o.rounds, 1);
const WARMUP = intOption(SCRIPT, 'warmup', o.warmup);
const MB = 1024 * 1024;

async function rssBytes(pid: number): Promise<number | null> {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null; // exited
  }
}

/** Rounds the coordinator has reported as done so far (its "round N: ..." lines). */
function roundsDone(p: Proc): number {
  let last = 0;
  for (const l of p.lines) {
    const m = /^round (\d+): /.exec(l);
    if (m) last = Math.max(last, Number(m[1]));
  }
  return last;
}

async function main(): Promise<void> {
  const started = Date.now();
  const load = [loadavg()[0]];
  const dir = await mkdtemp(join(tmpdir(), 'fedsfda-soak-'));
  const procs: Proc[] = [];
  try {
    const c = await makeConsortium(dir, SITES);
    const config = { rounds: ROUNDS, minSites: SITES, port: 0, secureAggregation: { clip: 8, maxExamples: 100 }, timeouts: { waitForSitesMs: 300_000, fitMs: 300_000, evaluateMs: 300_000 } };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const nodeOptions = SNAPSHOTS_AT.length ? ['--heapsnapshot-signal=SIGUSR2', `--diagnostic-dir=${o['snapshot-dir']}`] : [];
    const coord = startCoordinatorProcess(
      coordinatorArgs(c, join(dir, 'config.json')),
      nodeOptions.length ? { NODE_OPTIONS: [process.env.NODE_OPTIONS ?? '', ...nodeOptions].join(' ').trim() } : {},
    );
    procs.push(coord);
    const url = await coordinatorUrl(coord);
    const pid = coord.child.pid!;
    const samples: { round: number; rss: number; t: number }[] = [];
    const pendingSnapshots = [...SNAPSHOTS_AT];
    // Every 10th round: the coordinator's own memory view from /metrics (prom-client's Node process metrics), to
    // tell the live JS heap from heap capacity and from memory outside the heap.
    const memory: Record<number, Record<string, number>> = {};
    const readMemory = async (round: number): Promise<void> => {
      const text = await fetch(`${url}/metrics`).then((r) => r.text(), () => '');
      const pick = (re: RegExp): number => +(Number(re.exec(text)?.[1] ?? NaN) / MB).toFixed(1);
      memory[round] = {
        rss: pick(/^process_resident_memory_bytes (\S+)/m),
        heapTotal: pick(/^nodejs_heap_size_total_bytes (\S+)/m),
        heapUsed: pick(/^nodejs_heap_size_used_bytes (\S+)/m),
        external: pick(/^nodejs_external_memory_bytes (\S+)/m),
        oldSpaceSize: pick(/^nodejs_heap_space_size_total_bytes\{space="old"\} (\S+)/m),
        newSpaceSize: pick(/^nodejs_heap_space_size_total_bytes\{space="new"\} (\S+)/m),
      };
    };
    let nextMemoryRound = 0;
    const sampler = setInterval(() => {
      if (pendingSnapshots.length && roundsDone(coord) >= pendingSnapshots[0]) {
        pendingSnapshots.shift();
        coord.kill('SIGUSR2');
      }
      if (roundsDone(coord) >= nextMemoryRound) {
        void readMemory(nextMemoryRound);
        nextMemoryRound += 10;
      }
      void rssBytes(pid).then((rss) => {
        if (rss !== null) samples.push({ round: roundsDone(coord), rss, t: Date.now() - started });
      });
      if (samples.length % 60 === 0) load.push(loadavg()[0]);
    }, 500);
    const sites = await Promise.all(
      c.sites.map(async (s, i) =>
        runSite({ url, identity: await loadIdentity(s.identityFile), coordinatorPublicKey: c.coordinatorKey, siteId: s.id, trainer: new ToyTrainer(100 + i), reconnect: { maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 1000 } }).then(
          (r) => ({ ok: true as const, rounds: r.rounds.length, connections: r.connections }),
          (e: Error) => ({ ok: false as const, error: e.message }),
        ),
      ),
    );
    const exit = await coord.exited;
    clearInterval(sampler);
    load.push(loadavg()[0]);
    const warm = samples.filter((s) => s.round >= WARMUP);
    const atWarm = warm[0]?.rss ?? null;
    const last = samples.at(-1)?.rss ?? null;
    const peakAfterWarm = warm.reduce((m, s) => Math.max(m, s.rss), 0);
    const aggregated = coord.lines.filter((l) => /^round \d+: aggregated/.test(l)).length;
    console.log(
      JSON.stringify(
        {
          command: `node --import tsx scripts/reliability-soak.ts --sites ${SITES} --rounds ${ROUNDS} --warmup ${WARMUP}`,
          date: new Date().toISOString(),
          loadAverage1m: { min: Math.min(...load), max: Math.max(...load) },
          wallMs: Date.now() - started,
          coordinatorExit: exit,
          roundsAggregated: aggregated,
          sitesOk: sites.filter((s) => s.ok).length,
          siteConnections: sites.map((s) => (s.ok ? s.connections : s.error)),
          rssMb: {
            afterWarmup: atWarm === null ? null : +(atWarm / MB).toFixed(1),
            end: last === null ? null : +(last / MB).toFixed(1),
            peakAfterWarmup: +(peakAfterWarm / MB).toFixed(1),
            growthAfterWarmup: atWarm === null ? null : +((peakAfterWarm - atWarm) / MB).toFixed(1),
          },
          // Every 10th round: the RSS first sampled at or after it (MB).
          rssByRound: Object.fromEntries(
            Array.from({ length: Math.floor(ROUNDS / 10) + 1 }, (_, k) => k * 10).map((r) => [r, +((samples.find((s) => s.round >= r)?.rss ?? 0) / MB).toFixed(1)]),
          ),
          samples: samples.length,
          memoryByRound: memory,
        },
        null,
        2,
      ),
    );
    if (exit !== 0 || aggregated !== ROUNDS || (atWarm !== null && peakAfterWarm - atWarm >= 50 * MB)) process.exitCode = 1;
  } finally {
    await stopAll(procs);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
