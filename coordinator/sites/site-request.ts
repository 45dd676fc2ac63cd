/**
 * The one helper every coordinator-to-site exchange goes through (fit, evaluate, statistics layout, each SecAgg
 * stage): find the site's connection, run the call, and
 * - fail with `timeout` at the deadline, abandoning the open request on the connection (its late reply is then
 *   answered with `round_closed`), so no timer or pending promise outlives the exchange;
 * - fail with `stopped` when the coordinator stops;
 * - when the site drops mid-exchange and `reconnectGraceMs` > 0, wait for it to come back (within the deadline)
 *   and re-issue the same request on the new connection (the site answers from its cache; transfers resume).
 */
import type { Logger } from '../../protocol/common/index.ts';
import { SiteRequestError } from './request-keys.ts';
import type { SiteConnection } from './site-connection.ts';
import type { SiteRegistry } from './site-registry.ts';

export interface SiteRequest<T> {
  readonly siteId: string;
  /** What is asked, for errors and logs (`fit`, `evaluate`, `secagg:share-keys`, `statistics`). */
  readonly label: string;
  /** Absolute time (Date.now() scale) by which the reply must be in; Infinity for none. */
  readonly deadline: number;
  readonly signal: AbortSignal;
  /** How long to wait for a dropped site to reconnect and resume (0: fail at once). */
  readonly reconnectGraceMs: number;
  /** The exchange on one connection. */
  call(conn: SiteConnection): Promise<T>;
  /** Abandon the exchange's open request on `conn` (timeout or stop). */
  cancel(conn: SiteConnection, err: SiteRequestError): void;
}

/** A deadline `ms` from now (Infinity stays Infinity). */
export function deadlineIn(ms: number): number {
  return Number.isFinite(ms) ? Date.now() + ms : Infinity;
}

export async function requestSite<T>(registry: SiteRegistry, req: SiteRequest<T>, logger?: Logger): Promise<T> {
  let current = registry.get(req.siteId);
  if (!current) throw new SiteRequestError('disconnected', `site left before ${req.label}`);
  // Aborted when this exchange ends, including by the run's stop (`end` below aborts it). Not
  // AbortSignal.any([req.signal, local.signal]): on Node 20 that leaves a WeakRef per call in the run-long signal
  // until the run ends (~60 per secure round with 10 sites: the one structure of the soak's live heap that grew with
  // the rounds, scripts/heap-summary.ts); the run's signal only holds the listener below, removed in `finally`.
  const local = new AbortController();
  const signal = local.signal;
  /** Set while waiting for a dropped site to come back: a deadline then reports the drop, not a slow site. */
  let dropped: SiteRequestError | null = null;
  const attempt = async (): Promise<T> => {
    for (;;) {
      try {
        return await req.call(current!);
      } catch (e) {
        if (!(e instanceof SiteRequestError) || e.code !== 'disconnected' || e.siteLeft || req.reconnectGraceMs <= 0 || signal.aborted) throw e;
        logger?.info({ code: 'site_dropped_mid_request', siteId: req.siteId, request: req.label, err: e.message, graceMs: req.reconnectGraceMs }, 'site dropped mid-request; waiting for it to reconnect');
        dropped = e;
        current = await registry.waitForSite(req.siteId, req.reconnectGraceMs, signal).catch(() => {
          throw new SiteRequestError('disconnected', `${e.message}; it did not reconnect within ${req.reconnectGraceMs} ms`);
        });
        dropped = null;
        logger?.info({ code: 'site_resumed', siteId: req.siteId, request: req.label }, 'site reconnected; request re-issued on its new connection');
      }
    }
  };
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const guard = new Promise<never>((_, reject) => {
    const end = (err: SiteRequestError): void => {
      local.abort();
      if (current) req.cancel(current, err);
      reject(err);
    };
    const remaining = req.deadline - Date.now();
    const onDeadline = (): void =>
      end(dropped ? new SiteRequestError('disconnected', `${dropped.message}; it did not reconnect before the ${req.label} deadline`) : new SiteRequestError('timeout', `no ${req.label} reply in time`));
    if (Number.isFinite(remaining)) timer = setTimeout(onDeadline, Math.max(0, remaining));
    onAbort = () => end(new SiteRequestError('disconnected', `coordinator stopped during ${req.label}`));
    if (req.signal.aborted) onAbort();
    else req.signal.addEventListener('abort', onAbort, { once: true });
  });
  guard.catch(() => {}); // settled through the race below; never an unhandled rejection
  const work = attempt();
  work.catch(() => {});
  try {
    return await Promise.race([work, guard]);
  } finally {
    if (timer) clearTimeout(timer);
    if (onAbort) req.signal.removeEventListener('abort', onAbort);
    local.abort(); // releases a pending reconnect wait, if any
  }
}
