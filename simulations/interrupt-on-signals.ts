/**
 * Ctrl-C on `fedsfda simulate`. The first SIGINT/SIGTERM aborts the run through an AbortSignal: the runner stops
 * every child process (SIGTERM, SIGKILL after a grace period), writes a partial summary marked interrupted, and the
 * command exits 130. A second signal does not wait for any of that: it kills every child at once (SIGKILL) and
 * exits 130 immediately (no summary), as a user pressing Ctrl-C twice expects when a child is slow to stop
 * (e.g. still building its data).
 */
import { getLogger } from '../protocol/common/index.ts';

/** Exit code of a run stopped by SIGINT/SIGTERM (128 + SIGINT, the shell's convention for Ctrl-C). */
export const EXIT_INTERRUPTED = 130;

/** The part of `process` this needs (a test passes an EventEmitter). */
export interface SignalSource {
  on(event: NodeJS.Signals, listener: (sig: NodeJS.Signals) => void): unknown;
  off(event: NodeJS.Signals, listener: (sig: NodeJS.Signals) => void): unknown;
}

export interface InterruptOptions {
  /** The second signal: stop everything now and leave (the CLI: SIGKILL every child, exit 130). */
  readonly forceStop: (sig: NodeJS.Signals) => void;
  readonly source?: SignalSource;
}

export interface Interrupt {
  /** Aborted by the first signal; its reason is the signal's name. */
  readonly signal: AbortSignal;
  dispose(): void;
}

export function interruptOnSignals(opts: InterruptOptions): Interrupt {
  const source = opts.source ?? process;
  const controller = new AbortController();
  const onSignal = (sig: NodeJS.Signals): void => {
    if (!controller.signal.aborted) {
      getLogger().warn({ code: 'INTERRUPTED', signal: sig }, `simulate: ${sig} received, stopping every process (again to kill them at once)`);
      controller.abort(sig);
      return;
    }
    getLogger().warn({ code: 'FORCE_STOP', signal: sig }, `simulate: second ${sig}: killing every process now, no summary`);
    opts.forceStop(sig);
  };
  source.on('SIGINT', onSignal);
  source.on('SIGTERM', onSignal);
  return {
    signal: controller.signal,
    dispose: () => {
      source.off('SIGINT', onSignal);
      source.off('SIGTERM', onSignal);
    },
  };
}
