/**
 * Logging for every fedsfda process: one pino logger per process, handed down to the parts that need it.
 *
 * Conventions (so that an operator can grep and alert on them):
 * - every refusal, retry, timeout, abort and failure is logged ONCE, at `warn` (the process keeps serving) or
 *   `error` (a job did not do its job), with a typed `code` field from the error's closed set of codes
 *   (e.g. `{ code: 'not_enrolled', siteId }`), never with payload plaintext or patient data;
 * - lines carry an ISO timestamp, the level and the component (`{ component: 'coordinator' }` via `child`);
 * - logs go to stderr, so stdout stays free for results (`--json` output, tables);
 * - pretty (human) lines on a terminal, one JSON object per line otherwise; colour only on a terminal and only
 *   when `NO_COLOR` is unset (https://no-color.org).
 */
import { pino, stdTimeFunctions, type DestinationStream } from 'pino';
import pretty from 'pino-pretty';

/** The logging surface every component accepts: pino's method shape (object first), so a pino logger fits as is. */
export interface Logger {
  debug(obj: object, msg?: string): void;
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  error(obj: object, msg?: string): void;
  /** A logger whose lines all carry `bindings` (e.g. `{ component: 'secagg', round: 3 }`). */
  child(bindings: Record<string, unknown>): Logger;
}

export const LOG_LEVELS = ['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];
export const LOG_FORMATS = ['pretty', 'json'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** A logger that drops everything: for unit tests and library callers that pass none. */
export const silentLogger: Logger = {
  debug() {},
  info() {},
  warn() {},
  error() {},
  child() {
    return silentLogger;
  },
};

export interface LoggerOptions {
  /** Default `info`, or `FEDSFDA_LOG_LEVEL`. */
  level?: LogLevel;
  /** Default: `pretty` when the destination is a terminal, else `json`; or `FEDSFDA_LOG_FORMAT`. */
  format?: LogFormat;
  /** A file descriptor (default 2, stderr) or a stream (tests). */
  destination?: number | DestinationStream;
  /** Bound to every line, e.g. `{ component: 'site', siteId: 'hospital-a' }`. */
  bindings?: Record<string, unknown>;
}

/** True when colour escapes may be written to `fd` (a terminal, and `NO_COLOR` unset or empty). */
export function colourAllowed(fd: number): boolean {
  const noColor = process.env.NO_COLOR;
  if (noColor !== undefined && noColor !== '') return false;
  const stream = fd === 1 ? process.stdout : fd === 2 ? process.stderr : undefined;
  return stream?.isTTY === true;
}

function isTerminal(fd: number): boolean {
  const stream = fd === 1 ? process.stdout : fd === 2 ? process.stderr : undefined;
  return stream?.isTTY === true;
}

function envChoice<T extends string>(name: string, allowed: readonly T[]): T | undefined {
  const v = process.env[name];
  if (v === undefined || v === '') return undefined;
  if ((allowed as readonly string[]).includes(v)) return v as T;
  throw new RangeError(`${name}=${JSON.stringify(v)} is not one of ${allowed.join(', ')}`);
}

/**
 * A process logger. Synchronous writes (pino's `sync: true`), so the last lines before an exit or a crash are
 * never lost.
 */
export function createLogger(opts: LoggerOptions = {}): Logger {
  const level = opts.level ?? envChoice('FEDSFDA_LOG_LEVEL', LOG_LEVELS) ?? 'info';
  const dest = opts.destination ?? 2;
  const fd = typeof dest === 'number' ? dest : -1;
  const format = opts.format ?? envChoice('FEDSFDA_LOG_FORMAT', LOG_FORMATS) ?? (isTerminal(fd) ? 'pretty' : 'json');
  const base = { pid: process.pid, ...opts.bindings };
  const pinoOpts = { level, base, timestamp: stdTimeFunctions.isoTime };
  if (format === 'pretty') {
    const stream = pretty({
      colorize: fd >= 0 && colourAllowed(fd),
      destination: typeof dest === 'number' ? dest : (dest as unknown as NodeJS.WritableStream),
      sync: true,
      translateTime: 'SYS:yyyy-mm-dd HH:MM:ss.l',
      ignore: 'pid,hostname',
    });
    return pino(pinoOpts, stream);
  }
  const stream = typeof dest === 'number' ? pino.destination({ dest, sync: true }) : dest;
  return pino(pinoOpts, stream);
}

let processLogger: Logger | undefined;

/** Sets the logger `getLogger()` returns (the CLI calls this once from `--log-level` / `--log-format`). */
export function setProcessLogger(logger: Logger): void {
  processLogger = logger;
}

/** The process's logger: the one the CLI configured, else a default `createLogger()`. */
export function getLogger(): Logger {
  processLogger ??= createLogger();
  return processLogger;
}
