/**
 * How a simulation's child process learns that it must stop: SIGTERM or SIGINT (the parent stopping it on purpose,
 * or Ctrl-C reaching the whole process group), or its stdin closing, which happens when the parent is gone however
 * it died (even SIGKILL): the parent spawns every child with a stdin pipe it never writes to, so no child outlives it.
 * The stdin watch is on only when the parent says so (`FEDSFDA_PARENT_PIPE=1`): a child re-run by hand with
 * stdin at /dev/null must not stop at once.
 */

/** Set by the parent in a child's environment: stdin is a pipe whose end means the parent is gone. */
export const PARENT_PIPE_ENV = 'FEDSFDA_PARENT_PIPE';
export type StopReason = 'SIGTERM' | 'SIGINT' | 'parent-gone';

/** Calls `stop` once, on the first stop request; returns a function that removes the listeners. */
export function onStopRequest(stop: (reason: StopReason) => void): () => void {
  let called = false;
  const once = (reason: StopReason): void => {
    if (called) return;
    called = true;
    stop(reason);
  };
  const onTerm = (): void => once('SIGTERM');
  const onInt = (): void => once('SIGINT');
  const onGone = (): void => once('parent-gone');
  process.on('SIGTERM', onTerm);
  process.on('SIGINT', onInt);
  const watchParent = process.env[PARENT_PIPE_ENV] === '1';
  if (watchParent) {
    process.stdin.on('end', onGone);
    process.stdin.on('close', onGone);
    // Reading is what makes 'end' fire; nothing is ever written, so this only waits.
    process.stdin.resume();
  }
  return () => {
    process.off('SIGTERM', onTerm);
    process.off('SIGINT', onInt);
    if (watchParent) {
      process.stdin.off('end', onGone);
      process.stdin.off('close', onGone);
      process.stdin.pause();
    }
  };
}
