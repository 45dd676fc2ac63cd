/**
 * Last-resort handlers for a coordinator process. An exception nobody caught is either the echo of one broken
 * connection (a peer reset a socket we were writing to) — then the process logs it once and keeps serving the other
 * sites — or a bug in our own state — then continuing could corrupt the run, so the process logs it and exits
 * non-zero at once, for a supervisor (systemd, a container runtime, the simulation runner) to restart it from the
 * checkpoint. An unhandled promise rejection is always treated as the second kind.
 */
import type { Logger } from '../../protocol/common/index.ts';

/** Error codes that belong to a single connection: the socket is gone, nothing shared was half-updated. */
const CONNECTION_SCOPED_CODES: ReadonlySet<string> = new Set([
  'ECONNRESET',
  'EPIPE',
  'ECONNABORTED',
  'ETIMEDOUT',
  'ERR_STREAM_DESTROYED',
  'ERR_STREAM_WRITE_AFTER_END',
  'ERR_STREAM_PREMATURE_CLOSE',
  'ERR_HTTP_HEADERS_SENT',
  'HPE_HEADER_OVERFLOW',
  'HPE_INVALID_METHOD',
]);

/** Exit code of a coordinator stopped by an internal error (EX_SOFTWARE in sysexits.h). */
export const EXIT_INTERNAL_ERROR = 70;

/** True when `err` is one connection's failure that may be logged and survived. */
export function isConnectionScoped(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && CONNECTION_SCOPED_CODES.has(code);
}

export interface ProcessGuardOptions {
  /** Called instead of `process.exit` (tests). */
  exit?: (code: number) => void;
  /** Counts the connection-scoped errors that were survived (Prometheus). */
  onSurvived?: (code: string) => void;
  /** Where the events come from (default `process`; tests pass their own emitter). */
  target?: Pick<NodeJS.EventEmitter, 'on' | 'off'>;
}

/**
 * Install the handlers; returns a function that removes them.
 * @example const uninstall = installProcessGuards(logger); ... uninstall();
 */
export function installProcessGuards(logger: Logger, opts: ProcessGuardOptions = {}): () => void {
  const exit = opts.exit ?? ((code: number) => process.exit(code));
  const onException = (err: Error): void => {
    if (isConnectionScoped(err)) {
      const code = String((err as NodeJS.ErrnoException).code);
      logger.warn({ code: 'connection_error_survived', errCode: code, err: err.message }, 'a connection failed outside any handler; the coordinator keeps serving');
      opts.onSurvived?.(code);
      return;
    }
    logger.error({ code: 'uncaught_exception', err: err.message, stack: err.stack }, 'internal error: the coordinator exits for its supervisor to restart it from the checkpoint');
    exit(EXIT_INTERNAL_ERROR);
  };
  const onRejection = (reason: unknown): void => {
    const err = reason instanceof Error ? reason : new Error(String(reason));
    logger.error({ code: 'unhandled_rejection', err: err.message, stack: err.stack }, 'internal error (unhandled rejection): the coordinator exits for its supervisor to restart it');
    exit(EXIT_INTERNAL_ERROR);
  };
  const target = opts.target ?? process;
  target.on('uncaughtException', onException);
  target.on('unhandledRejection', onRejection);
  return () => {
    target.off('uncaughtException', onException);
    target.off('unhandledRejection', onRejection);
  };
}
