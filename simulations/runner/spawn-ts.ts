/**
 * Starts a TypeScript entry point as a separate OS process (through tsx, like the CLI) and reads its typed events
 * (child-events.ts). Processes are real: sites and coordinator share nothing but sockets. Every child gets a stdin
 * pipe that the parent never writes to: when the parent is gone, however it died, the child sees stdin end and stops
 * (child-lifecycle.ts), so no child outlives a simulation.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { z } from 'zod';
import { parseChildLine, type ChildEventSchema } from './child-events.ts';
import { PARENT_PIPE_ENV } from './child-lifecycle.ts';

const tsxLoader = import.meta.resolve('tsx');

/** Every child started by this process and not yet closed (killLiveChildren's list). */
const live = new Set<ChildProcess>();

/**
 * SIGKILL to every child this process started that is still running; returns how many. For a forced stop (a second
 * Ctrl-C on `fedsfda simulate`) right before this process exits: no child is left behind, none is waited for.
 */
export function killLiveChildren(): number {
  let n = 0;
  for (const child of live) {
    if (child.exitCode === null && child.signalCode === null && child.kill('SIGKILL')) n++;
  }
  return n;
}

export interface TsChild {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code (128 + signal number when killed by a signal, 1 when it could not start). */
  readonly exited: Promise<number>;
  /** Last lines of stderr, for error messages when the child fails. */
  stderrTail(): string;
  /** SIGTERM, then SIGKILL if it has not exited after `graceMs`; resolves with the exit code. */
  stop(graceMs: number): Promise<number>;
}

export interface ChildHandlers<T> {
  onEvent(e: T): void;
  /** Lines that are not events (the child's own prints). */
  onLog?(line: string): void;
  /** An event line that does not match the schema: a bug in the child, reported, never acted upon. */
  onInvalid?(line: string, reason: string): void;
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGHUP: 1, SIGINT: 2, SIGKILL: 9, SIGTERM: 15 };

function exitCode(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal ? (SIGNAL_NUMBERS[signal] ?? 0) : 0);
}

/** Starts `entry` with `args`; stdout lines are events of `schema` or log lines; stderr is kept (bounded). */
export function spawnTs<S extends ChildEventSchema>(
  name: string,
  entry: URL,
  args: string[],
  schema: S,
  handlers: ChildHandlers<z.infer<S>>,
  env: NodeJS.ProcessEnv = process.env,
): TsChild {
  const child = spawn(process.execPath, ['--import', tsxLoader, fileURLToPath(entry), ...args], {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...env, [PARENT_PIPE_ENV]: '1' },
  });
  live.add(child);
  child.on('close', () => live.delete(child));
  const tail: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    const parsed = parseChildLine(schema, line);
    if (parsed.kind === 'event') handlers.onEvent(parsed.event);
    else if (parsed.kind === 'invalid') handlers.onInvalid?.(parsed.line, parsed.reason);
    else handlers.onLog?.(parsed.line);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  });
  // The stdin pipe is only a lifeline; a child that exits early must not turn it into an EPIPE crash here.
  child.stdin!.on('error', () => {});
  // 'close', not 'exit': it fires after the child's stdout is fully read, so every event is handled first.
  const exited = new Promise<number>((resolve) => {
    child.on('close', (code, signal) => resolve(exitCode(code, signal)));
    child.on('error', () => resolve(1));
  });
  const stop = async (graceMs: number): Promise<number> => {
    if (child.exitCode !== null || child.signalCode !== null) return exited;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
    try {
      return await exited;
    } finally {
      clearTimeout(timer);
    }
  };
  return { name, process: child, exited, stderrTail: () => tail.join('\n'), stop };
}
