/** Reconnect delays: exponential backoff with "equal jitter" (half fixed, half random), capped. */

export interface BackoffOptions {
  /** First delay (default 500 ms). */
  initialDelayMs?: number;
  /** Cap (default 30 s). */
  maxDelayMs?: number;
  /** Give up after this many consecutive failed attempts (runSite's default: DEFAULT_MAX_ATTEMPTS, 30). */
  maxAttempts?: number;
}

export function backoffDelay(attempt: number, opts: BackoffOptions = {}, random: () => number = Math.random): number {
  const base = Math.min(opts.maxDelayMs ?? 30_000, (opts.initialDelayMs ?? 500) * 2 ** Math.min(attempt, 30));
  return base / 2 + (random() * base) / 2;
}

/** Resolve after `ms`, or reject as soon as `signal` aborts; the timer is always cleared. */
export function abortableDelay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}
