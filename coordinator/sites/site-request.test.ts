/**
 * requestSite's bookkeeping on the run-long stop signal: an exchange leaves nothing behind on it (the soak's heap grew
 * with the rounds while every call left a WeakRef there, AbortSignal.any on Node 20), and a stop still ends an
 * exchange that is waiting for its dropped site to come back.
 */
import { getEventListeners } from 'node:events';
import { describe, expect, it } from 'vitest';
import { SiteRequestError } from './request-keys.ts';
import type { SiteConnection } from './site-connection.ts';
import { SiteRegistry } from './site-registry.ts';
import { requestSite, type SiteRequest } from './site-request.ts';

const conn = (siteId: string): SiteConnection => ({ siteId, close: () => {} }) as unknown as SiteConnection;

function request(signal: AbortSignal, call: SiteRequest<number>['call'], reconnectGraceMs = 0): SiteRequest<number> {
  return { siteId: 'site-a', label: 'fit', deadline: Infinity, signal, reconnectGraceMs, call, cancel: () => {} };
}

/** Node's internal set of signals composed from this one (AbortSignal.any), when it exists. */
function dependants(signal: AbortSignal): number {
  const sym = Object.getOwnPropertySymbols(signal).find((s) => s.description === 'kDependantSignals');
  return sym ? ((signal as unknown as Record<symbol, Set<unknown> | undefined>)[sym]?.size ?? 0) : 0;
}

describe('requestSite', () => {
  it('leaves no listener and no composed signal on the run-long signal after its exchanges', async () => {
    const run = new AbortController();
    const registry = new SiteRegistry();
    registry.add(conn('site-a'));
    for (let i = 0; i < 50; i++) expect(await requestSite(registry, request(run.signal, async () => i))).toBe(i);
    expect(getEventListeners(run.signal, 'abort')).toHaveLength(0);
    expect(dependants(run.signal)).toBe(0);
  });

  it('a stop ends an exchange that waits for its dropped site to reconnect', async () => {
    const run = new AbortController();
    const registry = new SiteRegistry();
    const first = conn('site-a');
    registry.add(first);
    const dropped = requestSite(
      registry,
      request(
        run.signal,
        async () => {
          registry.remove(first);
          queueMicrotask(() => run.abort()); // the coordinator stops while the site is away
          throw new SiteRequestError('disconnected', 'site disconnected');
        },
        60_000,
      ),
    );
    await expect(dropped).rejects.toMatchObject({ code: 'disconnected', message: 'coordinator stopped during fit' });
    expect(getEventListeners(run.signal, 'abort')).toHaveLength(0);
  });
});
