/**
 * Real processes for reliability tests: a consortium on disk (identities, allow-list, toy initial model), the real
 * `fedsfda coordinator` CLI, and toy site processes (test/support/toy-site-process.ts). Every process logs pino JSON
 * on stderr; the harness parses those lines so that tests can assert on typed codes. Loopback only.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { generateIdentity, publicKeyToString, saveIdentity } from '../../protocol/identity.ts';
import { encodeWeightSet } from '../../protocol/tensor-codec.ts';
import { toyInitialWeights, type ToySiteArgs } from './toy-trainer.ts';

export type { ToySiteArgs };

const CLI = fileURLToPath(new URL('../../bin/fedsfda.mjs', import.meta.url));
const TOY_SITE = fileURLToPath(new URL('./toy-site-process.ts', import.meta.url));
const STALLED_COORDINATOR = fileURLToPath(new URL('./stalled-coordinator-process.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

export interface Consortium {
  dir: string;
  coordinatorIdentity: string;
  coordinatorKey: string;
  enroll: string;
  initWeights: string;
  sites: { id: string; identityFile: string }[];
}

/** Identities for a coordinator and `n` sites (site-1..site-n), the allow-list and the toy initial model in `dir`. */
export async function makeConsortium(dir: string, n: number): Promise<Consortium> {
  const coord = generateIdentity();
  await saveIdentity(join(dir, 'coordinator.json'), coord);
  const sites: Consortium['sites'] = [];
  const keys: Record<string, string> = {};
  for (let i = 1; i <= n; i++) {
    const id = `site-${i}`;
    const identity = generateIdentity();
    const identityFile = join(dir, `${id}.json`);
    await saveIdentity(identityFile, identity);
    keys[id] = publicKeyToString(identity.publicKey);
    sites.push({ id, identityFile });
  }
  await writeFile(join(dir, 'enroll.json'), JSON.stringify({ v: 1, sites: keys, tokens: [] }));
  await writeFile(join(dir, 'init.fsws'), encodeWeightSet(toyInitialWeights()));
  return {
    dir,
    coordinatorIdentity: join(dir, 'coordinator.json'),
    coordinatorKey: publicKeyToString(coord.publicKey),
    enroll: join(dir, 'enroll.json'),
    initWeights: join(dir, 'init.fsws'),
    sites,
  };
}

/** One parsed pino line. */
export interface LogLine {
  level: number;
  time: string;
  msg: string;
  code?: string;
  [k: string]: unknown;
}

export interface Proc {
  readonly child: ChildProcess;
  /** Parsed JSON log lines from stderr, in order. */
  readonly logs: LogLine[];
  /** Other stdout/stderr lines. */
  readonly lines: string[];
  /** Resolves with the exit code, or the signal name when killed. */
  readonly exited: Promise<number | string>;
  /** Resolves with the first line (log `msg` or plain line) matching `re`; rejects if the process exits first. */
  waitFor(re: RegExp): Promise<string>;
  kill(signal?: NodeJS.Signals): void;
}

function track(child: ChildProcess): Proc {
  const logs: LogLine[] = [];
  const lines: string[] = [];
  const waiters: { re: RegExp; resolve(l: string): void; reject(e: Error): void }[] = [];
  const onLine = (line: string): void => {
    let text = line;
    if (line.startsWith('{')) {
      try {
        const l = JSON.parse(line) as LogLine;
        if (typeof l.level === 'number') {
          logs.push(l);
          text = `${l.msg} ${line}`;
        } else lines.push(line);
      } catch {
        lines.push(line);
      }
    } else lines.push(line);
    for (const w of [...waiters]) {
      if (w.re.test(text)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(text);
      }
    }
  };
  createInterface({ input: child.stdout! }).on('line', onLine);
  createInterface({ input: child.stderr! }).on('line', onLine);
  const exited = new Promise<number | string>((resolve) => {
    child.on('exit', (code, signal) => {
      resolve(code ?? signal ?? 'unknown');
      // Lines already read were delivered; pending waiters fail now.
      setImmediate(() => {
        for (const w of waiters.splice(0)) w.reject(new Error(`process exited (${code ?? signal}) before a line matched ${String(w.re)}; last lines:\n${lines.slice(-15).join('\n')}`));
      });
    });
  });
  return {
    child,
    logs,
    lines,
    exited,
    waitFor: (re) =>
      new Promise<string>((resolve, reject) => {
        const seen = [...lines, ...logs.map((l) => `${l.msg} ${JSON.stringify(l)}`)].find((l) => re.test(l));
        if (seen !== undefined) return resolve(seen);
        if (child.exitCode !== null || child.signalCode !== null) return reject(new Error(`process already exited before ${String(re)}`));
        waiters.push({ re, resolve, reject });
      }),
    kill: (signal = 'SIGTERM') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    },
  };
}

/** The coordinator CLI's arguments for a consortium: its identity, allow-list and initial weights, a config file, then `extra`. */
export function coordinatorArgs(c: Consortium, config: string, extra: string[] = []): string[] {
  return ['--identity', c.coordinatorIdentity, '--enroll', c.enroll, '--init-weights', c.initWeights, '--config', config, ...extra];
}

/** `fedsfda --log-format json --log-level debug coordinator ...args` as a process. */
export function startCoordinatorProcess(args: string[], env: NodeJS.ProcessEnv = {}): Proc {
  return track(spawn(process.execPath, [CLI, '--log-format', 'json', '--log-level', 'debug', 'coordinator', ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...env } }));
}

/** The coordinator's URL, from its "listening on" line. */
export async function coordinatorUrl(p: Proc): Promise<string> {
  const line = await p.waitFor(/coordinator listening on (\S+)/);
  return /coordinator listening on (\S+)/.exec(line)![1];
}

/**
 * A stand-in on `port` that lets sites open their websocket and never answers socket.io's handshake (a coordinator
 * caught mid-connection; test/support/stalled-coordinator-process.ts). Prints `pending N` per site attempt.
 */
export function startStalledCoordinator(port: number): Proc {
  return track(spawn(process.execPath, ['--import', TSX, STALLED_COORDINATOR, String(port)], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

export function startToySite(a: ToySiteArgs): Proc {
  return track(spawn(process.execPath, ['--import', TSX, TOY_SITE, JSON.stringify(a)], { stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Start every site of the consortium against `url`. */
export function startToySites(c: Consortium, url: string, extra: Partial<ToySiteArgs> = {}): Proc[] {
  return c.sites.map((s, i) => startToySite({ url, coordinatorKey: c.coordinatorKey, siteId: s.id, identityFile: s.identityFile, seed: 100 + i, ...extra }));
}

/** Kill what is still running (afterEach). */
export async function stopAll(procs: Proc[]): Promise<void> {
  for (const p of procs) p.kill('SIGKILL');
  await Promise.all(procs.map((p) => p.exited));
}
