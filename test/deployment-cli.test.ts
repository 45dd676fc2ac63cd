/**
 * The README's deployment walkthrough, run as a consortium would run it: `fedsfda` installed as a command
 * (`npm install -g <repo> --prefix TMP`, on PATH), every command run from a directory OUTSIDE the repository, taken
 * line by line from the README's code block (so the README cannot drift from what works) with only the values a
 * test must change: the coordinator's host names become 127.0.0.1/localhost, the port a free one, the dataset
 * folders tiny phantom datasets, the model and the site options small. Then: three `run-site.sh` agents train two
 * secure rounds with the coordinator over TLS (certificate from `consortium init`), the dashboard is reachable with
 * the printed token only, `site audit` accounts for every update, `enroll add/remove/list` rewrite the allow-list and
 * every peers file, and a new hospital adapts the run's final model with the pooled source statistics.
 */
import { execFile, spawn } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm } from 'node:fs/promises';
import { get as httpsGet } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHILD_PROCESS_BOUND_MS } from './support/bounds.ts';
import { installCli } from './support/installed-cli.ts';

/**
 * The whole walkthrough (a global install, ~15 CLI processes, two secure rounds over TLS, statistics rounds, an
 * adaptation) is one test: ~90 s on an idle 2-core machine, 400 s alone at load 33, more than 600 s inside the full
 * suite at load 35. A bound against a hang, not a speed target.
 */
const WALKTHROUGH_BOUND_MS = 1_500_000;

const repo = fileURLToPath(new URL('..', import.meta.url));
let root: string;
let work: string;
let env: NodeJS.ProcessEnv;

/** The README's deployment code block, one command per line (comments and continuation-free). */
async function readmeCommands(): Promise<string[]> {
  const readme = await readFile(join(repo, 'README.md'), 'utf8');
  const section = readme.slice(readme.indexOf('## Deploying a consortium'));
  const block = section.slice(section.indexOf('```bash') + 7, section.indexOf('```', section.indexOf('```bash') + 7));
  return block
    .split('\n')
    .map((l) => l.replace(/\s+#.*$/, '').trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
}

/** The README line starting with `prefix` (it must exist: the test follows the README, not its own script). */
function line(commands: string[], prefix: string): string {
  const found = commands.find((c) => c.startsWith(prefix));
  if (!found) throw new Error(`the README's deployment walkthrough has no command starting with "${prefix}"`);
  return found;
}

function sh(command: string, cwd = work): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('bash', ['-c', command], { cwd, env, timeout: CHILD_PROCESS_BOUND_MS }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${command}\n-> ${err.message}\n${stderr}`));
      else resolve(stdout);
    });
  });
}

/** A long-running command; `firstMatch` resolves with the first stdout line matching `re`. */
function start(command: string, cwd: string, re?: RegExp): { exited: Promise<number>; firstMatch: Promise<RegExpMatchArray>; kill: () => void; output: () => string } {
  const child = spawn('bash', ['-c', `exec ${command}`], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  const firstMatch = new Promise<RegExpMatchArray>((resolve, reject) => {
    createInterface({ input: child.stdout }).on('line', (l) => {
      out += `${l}\n`;
      const m = re ? l.match(re) : null;
      if (m) resolve(m);
    });
    child.on('exit', () => reject(new Error(`${command} exited before printing ${String(re)}:\n${out}`)));
  });
  firstMatch.catch(() => {});
  const exited = new Promise<number>((resolve) => child.on('exit', (code) => resolve(code ?? 1)));
  return { exited, firstMatch, kill: () => child.kill('SIGTERM'), output: () => out };
}

/** GET over TLS trusting only `ca` (the certificate must name the host: both 127.0.0.1 and localhost are SANs). */
function httpsStatus(url: string, ca: string, token?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = httpsGet(url, { ca, headers: token ? { Authorization: `Bearer ${token}` } : {} }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('error', reject);
  });
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), 'fedsfda-deploy-'));
  work = join(root, 'work');
  await mkdir(work);
  // Installed as a command, as a consortium would: a global install into a private prefix (a link to this checkout).
  env = await installCli(join(root, 'prefix'), root, CHILD_PROCESS_BOUND_MS);
}, WALKTHROUGH_BOUND_MS);
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe('README deployment walkthrough, installed command, outside the repository', () => {
  it('provisions, trains two secure rounds over TLS, audits, re-enrolls, and adapts at a new hospital', async () => {
    const readme = await readmeCommands();
    const port = await freePort();
    expect((await sh('command -v fedsfda')).trim()).toBe(join(root, 'prefix', 'bin', 'fedsfda'));

    // Stand-ins for the hospitals' data: tiny phantom datasets (3 cases of 16x16x4 each, 3 classes).
    await sh('fedsfda data build-phantoms --out data --sites 4 --cases 3 --dims 16,16,4 --classes 3');

    // 1. coordinator operator
    await sh(
      line(readme, 'fedsfda consortium init')
        .replace('--host coordinator.example.org --host 10.0.0.5', '--host 127.0.0.1 --host localhost')
        .replace('--port 8443', `--port ${port}`),
    );
    const coordDir = join(work, 'consortium', 'coordinator');
    expect(readme).toContain('cd consortium/coordinator');
    await sh(line(readme, 'fedsfda model init').replace('--classes 4 --base 8 --depth 2', '--classes 3 --base 4 --depth 1'), coordDir);
    const coordinator = start(`${line(readme, 'fedsfda coordinator')} --rounds 2 --host 127.0.0.1`, coordDir, /dashboard: (\S+)/);
    const sites: ReturnType<typeof start>[] = [];
    try {
      const [, dashboard] = await coordinator.firstMatch;
      const token = (await readFile(join(coordDir, 'rest-token'), 'utf8')).trim();
      expect(dashboard).toBe(`https://127.0.0.1:${port}/#token=${token}`);

      // The REST surface, trusted through the consortium's CA: the printed token opens it, nothing else does.
      const ca = await readFile(join(coordDir, 'ca.crt'), 'utf8');
      expect(await httpsStatus(`https://127.0.0.1:${port}/status`, ca, token)).toBe(200);
      expect(await httpsStatus(`https://localhost:${port}/status`, ca, token)).toBe(200);
      expect(await httpsStatus(`https://127.0.0.1:${port}/status`, ca)).toBe(401);

      // 2. each hospital: check its data, run its bundle's script (small-data options appended)
      const check = line(readme, 'fedsfda data check');
      const run = line(readme, 'consortium/sites/hospital-a/run-site.sh');
      await sh(check.replace('/data/task', 'data/site-1')); // the same command at every hospital: checked once
      for (const [i, s] of ['hospital-a', 'hospital-b', 'hospital-c'].entries()) {
        sites.push(start(`${run.replace(/hospital-a/g, s).replace('/data/task', `data/site-${i + 1}`)} --size 16 --batch 4 --val-fraction 0.34`, work));
      }
      expect(await coordinator.exited).toBe(0);
      expect(await Promise.all(sites.map((s) => s.exited))).toEqual([0, 0, 0]);
    } catch (e) {
      throw new Error(`${(e as Error).message}\n--- coordinator:\n${coordinator.output()}\n--- sites:\n${sites.map((s) => s.output()).join('\n---\n')}`);
    } finally {
      coordinator.kill();
      for (const s of sites) s.kill();
    }

    const runDir = join(coordDir, 'run');
    const history = JSON.parse(await readFile(join(runDir, 'history.json'), 'utf8')) as { round: number; aggregated: boolean; secureAggregation?: { included: string[] } }[];
    expect(history.map((r) => [r.round, r.aggregated])).toEqual([[1, true], [2, true]]);
    for (const r of history) expect(r.secureAggregation?.included.sort()).toEqual(['hospital-a', 'hospital-b', 'hospital-c']);
    const audit = JSON.parse(await sh(`${line(readme, 'fedsfda site audit')} --json`)) as { updates: { round: number; bytes: number }[]; statistics: { name: string }[] };
    expect(audit.updates.map((u) => u.round)).toEqual([1, 2]);
    // source-stats is a scaled round: its exponent bounds are masked and sent first (audited as source-stats:range).
    expect(audit.statistics.map((x) => x.name).sort()).toEqual(['class-histogram', 'source-stats', 'source-stats:range']);
    expect(JSON.parse(await readFile(join(runDir, 'source-stats.json'), 'utf8'))).toMatchObject({ numSites: 3, numClasses: 3 });

    // 3. a hospital joins, one leaves: the allow-list and every bundle's peers file follow.
    await sh(line(readme, 'fedsfda enroll add'));
    await sh(line(readme, 'fedsfda enroll remove'));
    const listed = await sh(line(readme, 'fedsfda enroll list'));
    for (const s of ['hospital-a', 'hospital-b', 'hospital-d']) expect(listed).toContain(s);
    expect(listed).not.toContain('hospital-c');
    const peers = JSON.parse(await readFile(join(work, 'consortium', 'sites', 'hospital-d', 'peers.json'), 'utf8')) as { sites: Record<string, string> };
    expect(Object.keys(peers.sites).sort()).toEqual(['hospital-a', 'hospital-b', 'hospital-d']);

    // 4. the new hospital adapts the run's final model with the pooled statistics, next to its scans.
    await sh(`cp ${join(runDir, 'final-weights.fsws')} ${join(runDir, 'source-stats.json')} .`);
    await sh(line(readme, 'fedsfda adapt').replace('/data/new', 'data/site-4'));
    expect(JSON.parse(await readFile(join(work, 'adapted', 'adapt-report.json'), 'utf8'))).toMatchObject({ method: 'tent' });
  }, WALKTHROUGH_BOUND_MS);
});
