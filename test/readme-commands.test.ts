/**
 * Every command of the README's command table ("## The commands"), run copy-paste as a user would: `fedsfda`
 * installed as a command (`npm install -g <repo> --prefix TMP`, on PATH) and run from a temporary folder outside the
 * repository, with the table's placeholders filled by small inputs (tiny phantom datasets, a tiny U-Net, one-round
 * scenarios) so that the whole file stays short. Each command must exit 0 and produce what the table says it does.
 *
 * The table is read from README.md, not copied here: every `fedsfda ...` span in it must be matched by a command this
 * file ran (same subcommand, every option the span does not mark optional), or be one of the few that
 * test/deployment-cli.test.ts runs (a coordinator and its sites over TLS: too slow to run twice). A command added to
 * the table without a run here fails the last test; so does an option the README makes required that no run uses.
 */
import { execFile } from 'node:child_process';
import { access, mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { writeSeries } from '../site-agent/data/dicom/dicom-fixtures.ts';
import { resolveScenarioArg } from '../simulations/embedded-scenarios.ts';
import { loadScenarioFile, parseFederatedScenario } from '../simulations/scenario.ts';
import { parseSfdaBenchmarkConfig } from '../simulations/sfda/benchmark-config.ts';
import { parseMultiTargetConfig } from '../simulations/sfda/multi-target-config.ts';
import type { SimulationSummary } from '../simulations/runner/summary.ts';
import { CHILD_PROCESS_BOUND_MS, STAGE_BOUND_MS } from './support/bounds.ts';
import { installCli } from './support/installed-cli.ts';

/** ~2 min idle for the whole file (see the notes in /work/team/notes); a bound against a hang, not a speed target. */
const FILE_BOUND_MS = 1_200_000;

const repo = fileURLToPath(new URL('..', import.meta.url));
const MRICRON_TEMPLATES = '/usr/share/mricron/templates';
/** The commands that test/deployment-cli.test.ts runs from the README's walkthrough (installed, outside the repo). */
const RUN_BY_DEPLOYMENT_TEST = ['fedsfda coordinator', 'fedsfda site audit', 'fedsfda site'];

let root: string;
let work: string;
let env: NodeJS.ProcessEnv;
/** Every command line this file ran successfully (matched against the README's spans at the end). */
const ran: string[] = [];

/** The README's command table: its rows, and every `fedsfda ...` code span in them. */
async function readmeTable(): Promise<{ rows: string[]; commands: string[] }> {
  const readme = await readFile(join(repo, 'README.md'), 'utf8');
  const start = readme.indexOf('## The commands');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1));
  const rows = section.split('\n').filter((l) => l.startsWith('| ') && !l.startsWith('| who') && !l.startsWith('| ---'));
  const commands = rows.flatMap((r) => [...r.matchAll(/`(fedsfda [^`]+)`/g)].map((m) => m[1]));
  return { rows, commands };
}

/** `fedsfda data check PATH [--json]` -> `fedsfda data check`: the leading subcommand words. */
function subcommand(command: string): string {
  const words: string[] = [];
  for (const w of command.split(/\s+/)) {
    if (!/^[a-z][a-z-]*$/.test(w)) break;
    words.push(w);
  }
  return words.join(' ');
}

/** The options a README span requires: those outside `[...]`. */
function requiredOptions(span: string): string[] {
  return [...span.replace(/\[[^\]]*\]/g, '').matchAll(/(--[a-z][a-z-]*)/g)].map((m) => m[1]);
}

/**
 * Whether `line` (a command this file ran) is the README's `span` with its placeholders filled: the same subcommand
 * (the longest of the table's subcommands that `line` starts with) and every option the span requires.
 */
function runs(line: string, span: string, subcommands: readonly string[]): boolean {
  const words = line.split(/\s+/);
  const startsWith = (sub: string): boolean => sub.split(' ').every((w, i) => words[i] === w);
  const own = subcommands.filter(startsWith).sort((a, b) => b.length - a.length)[0];
  return own === subcommand(span) && requiredOptions(span).every((o) => words.includes(o));
}

/** Runs `command` with bash in the work folder (outside the repository); rejects with both streams on failure. */
function fedsfda(command: string): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', command], { cwd: work, env, timeout: CHILD_PROCESS_BOUND_MS, maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`${command}\n-> ${err.message}\n${stdout}\n${stderr}`));
      ran.push(command);
      resolve({ stdout, stderr });
    });
  });
}

const readJson = async <T>(file: string): Promise<T> => JSON.parse(await readFile(join(work, file), 'utf8')) as T;
const exists = (file: string): Promise<boolean> => access(join(work, file)).then(() => true, () => false);

/** A federated scenario small enough for seconds per round: two phantom sites of 16x16 slices, one round. */
const tinyScenario = {
  kind: 'federated',
  name: 'readme: two tiny sites',
  seed: 3,
  data: { size: 16, numClasses: 3, slicesPerCase: 2, valFraction: 0.34 },
  sites: [
    { id: 'site-x', shift: 'scanner-a', numCases: 3 },
    { id: 'site-y', shift: 'scanner-b', numCases: 3 },
  ],
  model: { baseChannels: 4, depth: 1 },
  training: { rounds: 1, localEpochs: 1, batchSize: 4, lr: 0.01, optimizer: 'adam', loss: 'ce+dice', strategy: 'fedavg', stageTimeoutMs: STAGE_BOUND_MS },
};

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fedsfda-readme-'));
  work = join(root, 'work');
  await mkdir(work);
  // Installed as a command (a link to this checkout; the native addon is kept when current: ~3 s).
  env = await installCli(join(root, 'prefix'), root, CHILD_PROCESS_BOUND_MS);
}, CHILD_PROCESS_BOUND_MS);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("README command table, installed command, run from outside the repository", () => {
  it('data build-phantoms, data check, data inspect: tiny Decathlon datasets, checked and inspected', async () => {
    expect((await fedsfda('command -v fedsfda')).stdout.trim()).toBe(join(root, 'prefix', 'bin', 'fedsfda'));
    ran.pop();
    const built = await fedsfda('fedsfda data build-phantoms --out data --sites 2 --cases 3 --dims 16,16,4 --classes 3');
    expect(built.stdout).toContain('data/site-1: 3 cases');
    expect(await readJson<{ numTraining: number }>('data/site-2/dataset.json')).toMatchObject({ numTraining: 3 });

    const check = await fedsfda('fedsfda data check data/site-1 --json');
    expect(JSON.parse(check.stdout)).toMatchObject({ layout: 'decathlon' });
    expect((await fedsfda('fedsfda data check data/site-2')).stdout).toMatch(/OK: .*site-2 \(decathlon\), 3\/3 training case\(s\) usable, 0 bad file/);

    const image = `data/site-1/imagesTr/${(await readdir(join(work, 'data/site-1/imagesTr')))[0]}`;
    const inspect = await fedsfda(`fedsfda data inspect ${image}`);
    expect(inspect.stdout).toMatch(/spacing:\s+3 x 3 x 6 mm/);
    expect(inspect.stdout).toContain('orientation:');
  }, FILE_BOUND_MS);

  it('data build-mricron: real T1 anatomy from Debian mricron-data, labelled by the AAL atlas', async () => {
    // mricron-data is a system package (.ci/system-deps installs it): say what is missing rather than skip.
    await expect(access(join(MRICRON_TEMPLATES, 'ch2.nii.gz')), `install Debian mricron-data (${MRICRON_TEMPLATES})`).resolves.toBeUndefined();
    const r = await fedsfda('fedsfda data build-mricron --out mricron --sites 2 --cases 1 --slab 2 --downsample 4');
    expect(r.stdout).toContain('mricron/site-2: 1 cases');
    expect(await readJson<{ labels: Record<string, string> }>('mricron/site-1/dataset.json')).toMatchObject({ labels: { '1': expect.any(String), '2': expect.any(String), '3': expect.any(String) } });
    const check = await fedsfda('fedsfda data check mricron/site-1');
    expect(check.stdout).toMatch(/1\/1 training case\(s\) usable/);
  }, FILE_BOUND_MS);

  it('data import-dicom: a DICOM series becomes a NIfTI volume', async () => {
    await writeSeries({ out: join(work, 'dicom', 'series-a'), rows: 16, cols: 16, slices: 3 });
    const r = await fedsfda('fedsfda data import-dicom dicom --out imported --json');
    const report = JSON.parse(r.stdout) as { series: unknown[] };
    expect(report.series).toHaveLength(1);
    const nifti = (await readdir(join(work, 'imported'), { recursive: true })).filter((f) => String(f).endsWith('.nii.gz'));
    expect(nifti).toHaveLength(1);
    expect((await fedsfda(`fedsfda data inspect imported/${String(nifti[0])}`)).stdout).toMatch(/dims:.*16 x 16 x 3/);
  }, FILE_BOUND_MS);

  it('privacy epsilon and calibrate: the accountant, and calibration that meets the budget', async () => {
    const eps = JSON.parse((await fedsfda('fedsfda privacy epsilon --sampling-rate 0.01 --noise-multiplier 1.1 --steps 1000 --delta 1e-5 --json')).stdout) as { epsilon: number; order: number };
    // Opacus 1.x (RDP, its default orders) gives 1.71 for these values.
    expect(eps.epsilon).toBeCloseTo(1.71, 2);
    const z = Number((await fedsfda('fedsfda privacy calibrate --sampling-rate 0.01 --steps 1000 --delta 1e-5 --epsilon 3')).stdout.trim());
    expect(z).toBeGreaterThan(0.5);
    expect(z).toBeLessThan(1.1); // a larger budget than 1.71 needs less noise
    const back = JSON.parse((await fedsfda(`fedsfda privacy epsilon --sampling-rate 0.01 --noise-multiplier ${z} --steps 1000 --delta 1e-5 --json`)).stdout) as { epsilon: number };
    expect(back.epsilon).toBeLessThanOrEqual(3);
    expect(back.epsilon).toBeGreaterThan(2.9);
  }, FILE_BOUND_MS);

  it('doctor and bench train: the chosen backend, and a timed training step on it', async () => {
    const doctor = await fedsfda('fedsfda doctor');
    expect(doctor.stdout).toMatch(/backend:\s+\S+/);
    expect(doctor.stdout).toMatch(/crypto:/);
    const bench = JSON.parse((await fedsfda('fedsfda bench train --json --size 16 --batch 1 --warmup 0 --steps 1 --no-cpu-baseline --no-compare --no-pytorch')).stdout.trim().split('\n').pop()!) as { backend: string; msPerStep: number; firstLoss: number };
    expect(bench.msPerStep).toBeGreaterThan(0);
    expect(Number.isFinite(bench.firstLoss)).toBe(true);
  }, FILE_BOUND_MS);

  it('identity new, model init, source-stats, adapt: the new-hospital path on unlabeled scans', async () => {
    const id = await fedsfda('fedsfda identity new --out hospital.json');
    expect(id.stdout.trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(await readJson<{ publicKey: string }>('hospital.json')).toMatchObject({ publicKey: id.stdout.trim() });

    await fedsfda('fedsfda model init --out model0 --classes 3 --base 4 --depth 1 --wire-out init.fsws');
    expect((await stat(join(work, 'init.fsws'))).size).toBeGreaterThan(1000);
    expect(await exists('model0/model.json')).toBe(true);

    const ss = await fedsfda('fedsfda source-stats --model model0 --data data/site-1 --out source-stats.json --size 16');
    expect(ss.stdout).toContain('source statistics of');
    expect(await readJson<{ numClasses: number }>('source-stats.json')).toMatchObject({ numClasses: 3 });

    // Unlabeled scans: only the images of site 2 (no label file anywhere in the folder); labels for evaluation only.
    await fedsfda('mkdir -p new && cp data/site-2/imagesTr/* new/');
    const adapt = await fedsfda('fedsfda adapt --model model0 --source-stats source-stats.json --data new --method tent --out adapted --eval-labels data/site-2 --size 16');
    expect(adapt.stdout).toContain('adapted model -> adapted/model');
    const report = await readJson<{ method: string }>('adapted/adapt-report.json');
    expect(report.method).toBe('tent');
    expect((await readdir(join(work, 'adapted/predictions'))).filter((f) => f.endsWith('.nii.gz'))).toHaveLength(3);
  }, FILE_BOUND_MS);

  it('consortium init, enroll add/remove/list: provisioning and the allow-list', async () => {
    const init = await fedsfda('fedsfda consortium init --out consortium --host 127.0.0.1 --host localhost --site hospital-a --site hospital-b --site hospital-c --port 8443');
    expect(init.stdout).toContain('fedsfda coordinator --identity identity.json --enroll enroll.json');
    expect((await stat(join(work, 'consortium/coordinator/rest-token'))).mode & 0o777).toBe(0o600);
    expect(await exists('consortium/sites/hospital-b/run-site.sh')).toBe(true);
    await fedsfda('fedsfda enroll add hospital-d --dir consortium');
    await fedsfda('fedsfda enroll remove hospital-a --dir consortium');
    const list = (await fedsfda('fedsfda enroll list --dir consortium')).stdout;
    for (const s of ['hospital-b', 'hospital-c', 'hospital-d']) expect(list).toContain(s);
    expect(list).not.toContain('hospital-a');
    const peers = await readJson<{ sites: Record<string, string> }>('consortium/sites/hospital-d/peers.json');
    expect(Object.keys(peers.sites).sort()).toEqual(['hospital-b', 'hospital-c', 'hospital-d']);
  }, FILE_BOUND_MS);

  it('simulate: a tiny scenario file, and the embedded mricron scenario in miniature on real anatomy', async () => {
    await writeFile(join(work, 'tiny.json'), JSON.stringify(tinyScenario));
    const r = await fedsfda('fedsfda simulate --config tiny.json --out sim');
    expect(r.stdout).toContain('mean Dice over sites');
    const summary = await readJson<SimulationSummary>('sim/summary.json');
    expect(summary.rounds.map((x) => [x.round, x.failures])).toEqual([[1, 0]]);
    expect(await exists('sim/report.html')).toBe(true);

    // The embedded mricron scenario (by name, as the README lists it), shrunk: its data built from mricron-data.
    const { raw } = await loadScenarioFile(resolveScenarioArg('mricron.json'));
    const m = raw as { prepare: Record<string, unknown>; data: Record<string, unknown>; sites: { id: string }[]; training: Record<string, unknown> };
    const mini = {
      ...m,
      prepare: { ...m.prepare, out: 'data/mricron-mini', casesPerSite: 2, slabSlices: 2, downsample: 4 },
      data: { ...m.data, size: 16, slicesPerCase: 2, valFraction: 0.5 },
      sites: m.sites.map((s) => ({ id: s.id, dataDir: `data/mricron-mini/${s.id}` })),
      model: { baseChannels: 2, depth: 1 },
      training: { ...m.training, rounds: 1, localEpochs: 1, batchSize: 2 },
    };
    await writeFile(join(work, 'mricron-mini.json'), JSON.stringify(mini));
    const mr = await fedsfda('fedsfda simulate --config mricron-mini.json --out sim-mricron');
    expect(mr.stdout).toContain('building 3 mricron site datasets');
    const ms = await readJson<SimulationSummary>('sim-mricron/summary.json');
    expect(ms.sites.map((s) => s.id)).toEqual(['site-1', 'site-2', 'site-3']);
    expect(ms.rounds).toHaveLength(1);
    expect(await exists('data/mricron-mini/site-3/dataset.json')).toBe(true);
  }, FILE_BOUND_MS);

  it('simulate --compare: one run per strategy and one comparison', async () => {
    const r = await fedsfda('fedsfda simulate --config tiny.json --out cmp --compare fedavg,fedprox,fedbn --proximal-mu 0.1');
    expect(r.stdout).toContain('fedprox (mu 0.1)');
    const cmp = await readJson<{ schema: string; rows: { strategy: string }[] }>('cmp/comparison.json');
    expect(cmp.schema).toBe('fedsfda.compare/v1');
    expect(cmp.rows.map((x) => x.strategy)).toEqual(['fedavg', 'fedprox', 'fedbn']);
    for (const s of ['fedavg', 'fedprox', 'fedbn']) expect(await exists(`cmp/${s}/summary.json`)).toBe(true);
  }, FILE_BOUND_MS);

  it('every scenario the table names is embedded, found by name from any folder, and valid', async () => {
    const { rows } = await readmeTable();
    const simulateRow = rows.find((r) => r.includes('`fedsfda simulate'))!;
    const names = [...simulateRow.matchAll(/`([a-z0-9-]+\.json)`/g)].map((x) => x[1]);
    expect(names).toEqual(expect.arrayContaining(['default.json', 'mricron.json', 'sfda-benchmark.json', 'secure.json']));
    for (const name of names) {
      const file = resolveScenarioArg(name, (p) => p.startsWith(repo));
      expect(file, `${name} is not an embedded scenario`).toBe(join(repo, 'simulations', 'scenarios', name));
      const { kind, raw, text } = await loadScenarioFile(file);
      if (kind === 'federated') parseFederatedScenario(file, raw, text);
      else if (kind === 'sfda-benchmark') parseSfdaBenchmarkConfig(raw, file, text);
      else if (kind === 'sfda-multi-target') parseMultiTargetConfig(raw, file);
      else throw new Error(`${name}: kind ${kind} is not documented in the table`);
    }
  });

  it('every command of the table was run above (or by the deployment walkthrough test), with its required options', async () => {
    const { commands } = await readmeTable();
    expect(commands.length).toBeGreaterThan(15);
    const subcommands = [...new Set(commands.map(subcommand))];
    const missing = commands.filter((span) => !ran.some((line) => runs(line, span, subcommands)) && !RUN_BY_DEPLOYMENT_TEST.includes(subcommand(span)));
    expect(missing).toEqual([]);
    // The deployment test really runs those (it reads the same README and calls them by these prefixes).
    const deployment = await readFile(join(repo, 'test', 'deployment-cli.test.ts'), 'utf8');
    for (const c of RUN_BY_DEPLOYMENT_TEST) expect(deployment).toContain(c);
  });
});
