/** Sites with an authenticated session, by site id; lets the round runner wait for a quorum without polling. */
import type { SiteConnection } from './site-connection.ts';

export class SiteRegistry {
  private readonly sites = new Map<string, SiteConnection>();
  private readonly waiters = new Set<() => void>();
  /** Every site id that completed a handshake with this process. */
  private readonly seen = new Set<string>();

  /** Register a ready connection; an older connection of the same site is closed (the newer one proved the key). */
  add(conn: SiteConnection): void {
    const id = conn.siteId as string;
    const old = this.sites.get(id);
    this.sites.set(id, conn);
    this.seen.add(id);
    if (old && old !== conn) old.close();
    for (const w of [...this.waiters]) w();
  }

  remove(conn: SiteConnection): void {
    const id = conn.siteId as string;
    if (this.sites.get(id) === conn) this.sites.delete(id);
    for (const w of [...this.waiters]) w();
  }

  get(siteId: string): SiteConnection | undefined {
    return this.sites.get(siteId);
  }

  ids(): string[] {
    return [...this.sites.keys()].sort();
  }

  all(): SiteConnection[] {
    return [...this.sites.values()];
  }

  get size(): number {
    return this.sites.size;
  }

  /**
   * Resolve once at least `n` sites are connected; reject with the signal's reason on abort, or with a timeout
   * error after `timeoutMs` (Infinity = no timeout). The timer is always cleared.
   */
  waitForCount(n: number, timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.waitFor(() => this.sites.size >= n, timeoutMs, `fewer than ${n} sites after ${timeoutMs} ms`, signal);
  }

  /** Resolve with the connection of `siteId` once it is connected (again), or reject after `timeoutMs` / on abort. */
  async waitForSite(siteId: string, timeoutMs: number, signal?: AbortSignal): Promise<SiteConnection> {
    await this.waitFor(() => this.sites.has(siteId), timeoutMs, `site ${siteId} did not reconnect within ${timeoutMs} ms`, signal);
    return this.sites.get(siteId) as SiteConnection;
  }

  /** Resolve once every site of `ids` has connected to this process at least once, or reject after `timeoutMs`. */
  waitForSeen(ids: readonly string[], timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.waitFor(() => ids.every((id) => this.seen.has(id)), timeoutMs, `not every site connected within ${timeoutMs} ms`, signal);
  }

  /** Of `ids`, those that never connected to this process. */
  unseen(ids: readonly string[]): string[] {
    return ids.filter((id) => !this.seen.has(id));
  }

  /** Resolve once no site is connected (after `finish`, sites hang up), or reject after `timeoutMs`. */
  waitForEmpty(timeoutMs: number, signal?: AbortSignal): Promise<void> {
    return this.waitFor(() => this.sites.size === 0, timeoutMs, `sites still connected after ${timeoutMs} ms`, signal);
  }

  private waitFor(cond: () => boolean, timeoutMs: number, timeoutReason: string, signal?: AbortSignal): Promise<void> {
    if (cond()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      let timer: ReturnType<typeof setTimeout> | null = null;
      const done = (err?: Error): void => {
        this.waiters.delete(check);
        if (timer) clearTimeout(timer);
        signal?.removeEventListener('abort', onAbort);
        if (err) reject(err);
        else resolve();
      };
      const check = (): void => {
        if (cond()) done();
      };
      const onAbort = (): void => done(signal?.reason instanceof Error ? signal.reason : new Error('aborted'));
      if (signal?.aborted) return onAbort();
      signal?.addEventListener('abort', onAbort);
      if (Number.isFinite(timeoutMs)) timer = setTimeout(() => done(new Error(timeoutReason)), timeoutMs);
      this.waiters.add(check);
    });
  }
}
