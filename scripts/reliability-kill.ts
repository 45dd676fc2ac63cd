/**
 * kill -9 of the coordinator at random moments of a run (issue 11), with real processes on loopback: the
 * `fedsfda coordinator` CLI with a checkpoint and a run folder (statistics on), three toy site processes that
 * keep retrying. Each run kills the coordinator (SIGKILL) several times at seeded random moments, anywhere in the
 * run or after the last training round (statistics rounds and artifact writing), restarting it each time on the
 * same port, checkpoint and folder, and checks the finished folder against an uninterrupted run: run.json complete and ok,
 * the same rounds in history.json, final weights decodable with the same tensors, both statistics files over all
 * sites, no stray temporary file, every site released with exit 0.
 * Run: nice -n 10 node --import tsx scripts/reliability-kill.ts [--kills 20] [--per-run 5] [--rounds 4] [--seed 1]   (prints JSON)
 * --max-delay MS (default 8000): latest 'anywhere' kill after an incarnation listens. To replay one run of a seed's schedule: --only N (1-based; earlier runs' plans are drawn but not run) --no-baseline
 * (skip the uninterrupted run; its round count and files are then taken as rounds 1..R and the files of a complete
 * folder); --logs DIR writes every process's full output of every run to DIR/run-N/.
 */
import { mkdir, mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { runManifestSchema } from '../coordinator/index.ts';
import { Rng } from '../protocol/common/index.ts';
import { decodeWeightSet } from '../protocol/index.ts';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, startToySites, stopAll, type Proc } from '../test/support/process-harness.ts';
import { intOption, scriptOptions } from './script-options.ts';

const SCRIPT = 'reliability-kill';
const o = scriptOptions(SCRIPT, { kills: { type: 'string', default: '20' }, 'per-run': { type: 'string', default: '5' }, rounds: { type: 'string', default: '4' }, seed: { type: 'string', default: '1' }, only: { type: 'string' }, 'max-delay': { type: 'string', default: '8000' }, 'no-baseline': { type: 'boolean', default: false }, logs: { type: 'string' } }, '[--kills N] [--per-run N] [--rounds N] [--seed N] [--only N] [--max-delay MS] [--no-baseline] [--logs DIR]');
const KILLS = intOption(SCRIPT, 'kills', o.kills, 1);
const PER_RUN = intOption(SCRIPT, 'per-run', o['per-run'], 1);
const ROUNDS = intOption(SCRIPT, 'rounds', o.rounds, 1);
const rng = new Rng(intOption(SCRIPT, 'seed', o.seed));
const only = o.only === undefined ? undefined : intOption(SCRIPT, 'only', o.only, 1);
/** Latest moment of an 'anywhere' kill after the incarnation listens (ms); small values pile kills up before round 1. */
const MAX_DELAY = intOption(SCRIPT, 'max-delay', o['max-delay']);

interface Folder {
  files: string[];
  rounds: number[];
  tensors: string[];
  problems: string[];
}

/** What a finished run folder holds, and everything wrong with it. */
async function inspect(out: string): Promise<Folder> {
  const problems: string[] = [];
  const files = (await readdir(out)).filter((f) => f !== 'checkpoints').sort();
  let rounds: number[] = [];
  let tensors: string[] = [];
  try {
    const m = runManifestSchema.parse(JSON.parse(await readFile(join(out, 'run.json'), 'utf8')));
    if (m.round !== ROUNDS) problems.push(`run.json round ${m.round}`);
    if (!m.outcome?.ok || m.outcome.aggregatedRounds !== ROUNDS) problems.push(`run.json outcome ${JSON.stringify(m.outcome)}`);
    if (m.report.failures.length > 0) problems.push(`artifact failures ${JSON.stringify(m.report.failures)}`);
    if (m.report.sourceStats?.sites.length !== 3) problems.push('source stats not over 3 sites');
    if (m.report.classHistogram?.sites.length !== 3) problems.push('class histogram not over 3 sites');
  } catch (e) {
    problems.push(`run.json: ${(e as Error).message.slice(0, 200)}`);
  }
  try {
    rounds = (JSON.parse(await readFile(join(out, 'history.json'), 'utf8')) as { round: number }[]).map((r) => r.round);
    tensors = decodeWeightSet(new Uint8Array(await readFile(join(out, 'final-weights.fsws')))).map((t) => t.name).sort();
    for (const f of ['source-stats.json', 'class-histogram.json']) JSON.parse(await readFile(join(out, f), 'utf8'));
  } catch (e) {
    problems.push((e as Error).message.slice(0, 200));
  }
  return { files, rounds, tensors, problems };
}

interface Kill {
  mode: 'anywhere' | 'after-last-round';
  delayMs: number;
  /** The coordinator's last output before the kill (log message or printed line): where in the run it died. */
  phase: string;
}

interface Trial {
  kills: Kill[];
  /** For a failed trial: the last output of the last coordinator and of every site (what went wrong, kept for diagnosis). */
  lastOutput?: string[];
  /** Exit of the coordinator that finished the run. */
  lastExit: number | string;
  sitesExit: (number | string)[];
  folder: Folder;
  wallMs: number;
}

function lastOutput(p: Proc): string {
  const log = p.logs.at(-1);
  const line = p.lines.at(-1);
  return `${line ?? ''} | ${log ? `${log.msg}${log.code ? ` (${log.code})` : ''}` : ''}`;
}

/**
 * One run with `plan.length` kills: before kill i the coordinator incarnation waits `delayMs` after it started
 * listening ('anywhere'), or after it printed the last round's aggregation ('after-last-round': statistics rounds
 * and artifact writing). Each killed coordinator is restarted on the same port, checkpoint and folder.
 */
async function trial(plan: Omit<Kill, 'phase'>[], logsDir?: string): Promise<Trial> {
  const started = Date.now();
  const dir = await mkdtemp(join(tmpdir(), 'fedsfda-kill-'));
  const procs: Proc[] = [];
  try {
    const c = await makeConsortium(dir, 3);
    const out = join(dir, 'run');
    const config = { rounds: ROUNDS, minSites: 3, port: 0, checkpointDir: join(out, 'checkpoints'), statistics: { pixelBound: 1000 }, timeouts: { waitForSitesMs: 300_000 } };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const args = coordinatorArgs(c, join(dir, 'config.json'), ['--out', out]);
    let coord = startCoordinatorProcess(args);
    procs.push(coord);
    const url = await coordinatorUrl(coord);
    const sites = startToySites(c, url, { maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 500 });
    procs.push(...sites);
    const kills: Kill[] = [];
    for (const k of plan) {
      if (k.mode === 'after-last-round') {
        const lastRound = new RegExp(`^round ${ROUNDS}: aggregated|^resuming from checkpoint .*"round":${ROUNDS}[,}]`);
        const reached = await coord.waitFor(lastRound).then(() => true, () => false);
        if (!reached) break;
      } else await coordinatorUrl(coord).catch(() => undefined);
      const timer = new Promise<'timer'>((r) => setTimeout(() => r('timer'), k.delayMs));
      if ((await Promise.race([timer, coord.exited])) !== 'timer' || coord.child.exitCode !== null) break;
      kills.push({ ...k, phase: lastOutput(coord) });
      coord.kill('SIGKILL');
      await coord.exited;
      coord = startCoordinatorProcess([...args, '--port', new URL(url).port]);
      procs.push(coord);
      process.stderr.write(`  kill ${kills.length}: ${k.mode} +${k.delayMs} ms after "${kills.at(-1)!.phase}"\n`);
    }
    const lastExit = await coord.exited;
    const sitesExit = await Promise.all(sites.map((s) => s.exited));
    const folder = await inspect(out);
    const failed = lastExit !== 0 || sitesExit.some((e) => e !== 0) || folder.problems.length > 0;
    const tail = (name: string, p: Proc): string[] => [...p.lines.slice(-3), ...p.logs.slice(-6).map((l) => `${l.code ?? ''} ${l.msg}`)].map((l) => `${name}: ${l.slice(0, 300)}`);
    const output = failed ? [...tail('coordinator', coord), ...sites.flatMap((s, i) => tail(`site-${i + 1}`, s))] : undefined;
    if (logsDir) await writeLogs(logsDir, procs, sites);
    return { kills, lastExit, sitesExit, folder, wallMs: Date.now() - started, ...(output ? { lastOutput: output } : {}) };
  } finally {
    await stopAll(procs);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Every process's whole output (coordinator incarnations in order, then the sites), one file each. */
async function writeLogs(dir: string, procs: Proc[], sites: Proc[]): Promise<void> {
  await mkdir(dir, { recursive: true });
  const coords = procs.filter((p) => !sites.includes(p));
  const dump = (p: Proc): string => [...p.lines, ...p.logs.map((l) => JSON.stringify(l))].join('\n') + '\n';
  await Promise.all([
    ...coords.map((p, i) => writeFile(join(dir, `coordinator-${i + 1}.log`), dump(p))),
    ...sites.map((p, i) => writeFile(join(dir, `site-${i + 1}.log`), dump(p))),
  ]);
}

/** The uninterrupted run, or (--no-baseline) what it always produces. */
async function baseline(): Promise<Trial> {
  if (!o['no-baseline']) return trial([]);
  const files = ['class-histogram.json', 'final-weights.fsws', 'history.json', 'run.json', 'source-stats.json'];
  const folder = { files, rounds: Array.from({ length: ROUNDS }, (_, i) => i + 1), tensors: ['head.w', 'linear.b', 'linear.w'], problems: [] };
  return { kills: [], lastExit: 0, sitesExit: [0, 0, 0], folder, wallMs: 0 };
}

async function main(): Promise<void> {
  const load = [loadavg()[0]];
  const base = await baseline();
  if (base.folder.problems.length > 0 || base.lastExit !== 0) throw new Error(`the uninterrupted run is not complete: ${base.folder.problems.join('; ')}`);
  process.stderr.write(`uninterrupted run: ${base.wallMs} ms\n`);
  const trials: Trial[] = [];
  const killsSoFar = (): number => trials.reduce((a, t) => a + t.kills.length, 0);
  for (let i = 0; only !== undefined ? i < only : killsSoFar() < KILLS && i < KILLS; i++) {
    // Per run: kills anywhere (0-8 s after the incarnation listens), and on every other run one after the last round.
    const plan: Omit<Kill, 'phase'>[] = Array.from({ length: PER_RUN - 1 }, () => ({ mode: 'anywhere' as const, delayMs: Math.round(rng.next() * MAX_DELAY) }));
    plan.unshift({ mode: i % 2 === 0 ? 'after-last-round' : 'anywhere', delayMs: Math.round(rng.next() * (i % 2 === 0 ? 1500 : MAX_DELAY)) });
    if (only !== undefined && i + 1 !== only) continue;
    const t = await trial(plan, o.logs ? join(o.logs, `run-${i + 1}`) : undefined);
    trials.push(t);
    const bad = problemsOf(t, base);
    process.stderr.write(`run ${i + 1}: ${t.kills.length} kill(s), ${Math.round(t.wallMs / 1000)} s: ${bad.length ? bad.join('; ') : 'complete and equal'}\n`);
    load.push(loadavg()[0]);
  }
  const failed = trials.map((t) => ({ t, bad: problemsOf(t, base) })).filter((x) => x.bad.length > 0);
  console.log(
    JSON.stringify(
      {
        command: `node --import tsx scripts/reliability-kill.ts --kills ${KILLS} --per-run ${PER_RUN} --rounds ${ROUNDS} --seed ${o.seed}${only !== undefined ? ` --only ${only}` : ''}${o['no-baseline'] ? ' --no-baseline' : ''}${MAX_DELAY !== 8000 ? ` --max-delay ${MAX_DELAY}` : ''}`,
        date: new Date().toISOString(),
        loadAverage1m: { min: Math.min(...load), max: Math.max(...load) },
        uninterrupted: { wallMs: base.wallMs, rounds: base.folder.rounds, files: base.folder.files, tensors: base.folder.tensors },
        runs: trials.length,
        kills: killsSoFar(),
        killsAfterLastRound: trials.reduce((a, t) => a + t.kills.filter((k) => k.mode === 'after-last-round').length, 0),
        runsCompleteAndEqual: trials.length - failed.length,
        perRun: trials.map((t) => ({ kills: t.kills.length, wallS: Math.round(t.wallMs / 1000) })),
        failures: failed.map(({ t, bad }) => ({ kills: t.kills, problems: bad, lastOutput: t.lastOutput })),
        killPoints: trials.flatMap((t) => t.kills.map((k) => `${k.mode} +${k.delayMs} ms: ${k.phase}`)),
      },
      null,
      2,
    ),
  );
  if (failed.length > 0) process.exitCode = 1;
}

function problemsOf(t: Trial, base: Trial): string[] {
  const bad = [...t.folder.problems];
  if (t.lastExit !== 0) bad.push(`the last coordinator exited ${t.lastExit}`);
  if (t.sitesExit.some((e) => e !== 0)) bad.push(`sites exited ${t.sitesExit.join(',')}`);
  if (JSON.stringify(t.folder.rounds) !== JSON.stringify(base.folder.rounds)) bad.push(`rounds ${t.folder.rounds.join(',')}`);
  if (JSON.stringify(t.folder.files) !== JSON.stringify(base.folder.files)) bad.push(`files ${t.folder.files.join(',')}`);
  if (JSON.stringify(t.folder.tensors) !== JSON.stringify(base.folder.tensors)) bad.push(`tensors ${t.folder.tensors.join(',')}`);
  return bad;
}

await main();
