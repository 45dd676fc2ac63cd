/**
 * Starts a TypeScript entry point as a separate OS process (through tsx, like the CLI) and exposes
 * its newline-delimited JSON events. Processes are real: sites and coordinator share nothing but sockets.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const tsxLoader = import.meta.resolve('tsx');

export interface ChildEvent {
  readonly event: string;
  readonly [key: string]: unknown;
}

export interface TsChild {
  readonly name: string;
  readonly process: ChildProcess;
  /** Resolves with the exit code (or 1 when killed by a signal). */
  readonly exited: Promise<number>;
  /** Last lines of stderr, for error messages when the child fails. */
  stderrTail(): string;
}

/**
 * Lines on the child's stdout that start with `{"event":` are parsed and passed to `onEvent`;
 * other lines go to `onLog`. stderr is kept (bounded) for diagnostics.
 */
export function spawnTs(
  name: string,
  entry: URL,
  args: string[],
  handlers: { onEvent: (e: ChildEvent) => void; onLog?: (line: string) => void },
  env: NodeJS.ProcessEnv = process.env,
): TsChild {
  const child = spawn(process.execPath, ['--import', tsxLoader, fileURLToPath(entry), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
  });
  const tail: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    if (line.startsWith('{"event":')) {
      try {
        handlers.onEvent(JSON.parse(line) as ChildEvent);
        return;
      } catch {
        // fall through: a malformed line is logged, not fatal
      }
    }
    handlers.onLog?.(line);
  });
  createInterface({ input: child.stderr! }).on('line', (line) => {
    tail.push(line);
    if (tail.length > 40) tail.shift();
  });
  const exited = new Promise<number>((resolve) => {
    child.on('exit', (code) => resolve(code ?? 1));
    child.on('error', () => resolve(1));
  });
  return { name, process: child, exited, stderrTail: () => tail.join('\n') };
}

/** Writes one event line on stdout: the child side of `spawnTs`. */
export function emitEvent(event: string, fields: Record<string, unknown> = {}): void {
  process.stdout.write(`${JSON.stringify({ event, ...fields })}\n`);
}
