/**
 * A long synchronous pass (a training epoch, a prediction or statistics pass over a whole split) holds the site's
 * event loop; while it does, socket.io heartbeats go unanswered and a loaded machine drops the site mid-round
 * (RELIABILITY.md, "Sites dropped under load"). Passes are written once as generators that `yield` between batches:
 * `runSteps` drives one to the end without pausing (library callers, benchmarks), `runStepsYielding` lets timers and
 * sockets run at every yield (the site agent). Both run exactly the same computation, so results are identical.
 *
 * @example
 * function* pass(): Generator<void, number> { let s = 0; for (const b of batches) { s += work(b); yield; } return s; }
 * const sync = runSteps(pass());
 * const same = await runStepsYielding(pass());
 */
import { setImmediate as setImmediatePromise } from 'node:timers/promises';

/**
 * One turn of the event loop (timers, I/O callbacks, heartbeats). node:timers/promises rather than the global
 * setImmediate, so that tests running under fake timers do not hang.
 */
export const yieldToEventLoop = (): Promise<void> => setImmediatePromise();

/** Run a pass to its end without pausing; returns its result. */
export function runSteps<T>(pass: Generator<void, T, void>): T {
  for (;;) {
    const r = pass.next();
    if (r.done) return r.value;
  }
}

/** Run a pass, giving the event loop a turn at each of its yields; resolves with its result. */
export async function runStepsYielding<T>(pass: Generator<void, T, void>): Promise<T> {
  for (;;) {
    const r = pass.next();
    if (r.done) return r.value;
    await yieldToEventLoop();
  }
}
