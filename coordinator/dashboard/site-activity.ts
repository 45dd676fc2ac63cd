/**
 * Per-site view for the dashboard (`GET /sites`): connected or not, first and last seen, what the site is doing now,
 * sealed bytes to and from it, its last metrics and its last failure with the cause. Built from the coordinator's
 * own events (no extra messages on the wire); byte counts come from the secure channels at read time.
 */
import type { EventEmitter } from 'node:events';
import type { RoundEvents, Stage } from '../index.ts';

export type SiteStage = 'offline' | 'idle' | 'fit' | 'evaluate' | 'waiting';

export interface SiteActivity {
  readonly siteId: string;
  readonly connected: boolean;
  readonly firstSeen: string | null;
  /** Last connection, disconnection, reply or failure (ISO time). */
  readonly lastSeen: string | null;
  readonly stage: SiteStage;
  /** Round of the current (or last) stage. */
  readonly round: number | null;
  /** Sealed bytes the coordinator sent to / received from this site, over all its sessions. */
  readonly bytesToSite: number;
  readonly bytesFromSite: number;
  readonly lastFitMetrics: Record<string, number> | null;
  readonly lastEvalMetrics: Record<string, number> | null;
  readonly lastFailure: { readonly round: number; readonly stage: string; readonly code: string; readonly reason: string } | null;
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

interface SiteEventsLike {
  siteConnected: [siteId: string];
  siteDisconnected: [siteId: string];
}

export class SiteActivityTracker {
  private readonly sites = new Map<string, Mutable<SiteActivity>>();
  private roundSites: string[] = [];

  constructor(
    enrolled: readonly string[],
    private readonly now: () => Date = () => new Date(),
  ) {
    for (const id of enrolled) this.site(id);
  }

  private site(id: string): Mutable<SiteActivity> {
    let s = this.sites.get(id);
    if (!s) {
      s = { siteId: id, connected: false, firstSeen: null, lastSeen: null, stage: 'offline', round: null, bytesToSite: 0, bytesFromSite: 0, lastFitMetrics: null, lastEvalMetrics: null, lastFailure: null };
      this.sites.set(id, s);
    }
    return s;
  }

  private seen(id: string): Mutable<SiteActivity> {
    const s = this.site(id);
    const t = this.now().toISOString();
    s.firstSeen ??= t;
    s.lastSeen = t;
    return s;
  }

  /** Follows the coordinator's events (its handle's `events`). */
  attach(events: EventEmitter<RoundEvents & SiteEventsLike>): void {
    events.on('siteConnected', (id) => {
      const s = this.seen(id);
      s.connected = true;
      s.stage = 'idle';
    });
    events.on('siteDisconnected', (id) => {
      const s = this.seen(id);
      s.connected = false;
      s.stage = 'offline';
    });
    events.on('roundStarted', (round, ids) => {
      this.roundSites = [...ids];
      for (const id of ids) Object.assign(this.site(id), { round });
    });
    events.on('stage', (stage: Stage, round) => {
      if (stage !== 'fit' && stage !== 'evaluate') return;
      for (const id of this.roundSites) {
        const s = this.site(id);
        if (s.connected) Object.assign(s, { stage, round });
      }
    });
    events.on('siteReplied', (r) => {
      // Secure rounds reply once for the sum ('secure-aggregate'), not per site: only real sites have panels.
      if (!this.sites.has(r.siteId)) return;
      const s = this.seen(r.siteId);
      s.stage = 'waiting';
      s.round = r.round;
      if (r.stage === 'fit') s.lastFitMetrics = { ...r.metrics };
      else s.lastEvalMetrics = { ...r.metrics };
    });
    events.on('siteFailed', (f) => {
      if (!this.sites.has(f.siteId)) return;
      const s = this.seen(f.siteId);
      s.lastFailure = { round: f.round, stage: f.stage, code: f.code, reason: f.reason };
      if (s.connected) s.stage = 'waiting';
    });
    events.on('finished', () => {
      for (const s of this.sites.values()) if (s.connected) s.stage = 'idle';
    });
  }

  /** Every enrolled or seen site, with byte counts from `bytesOf` (sessions closed + open). */
  snapshot(bytesOf: (siteId: string) => { toSite: number; fromSite: number }): SiteActivity[] {
    return [...this.sites.values()].map((s) => {
      const b = bytesOf(s.siteId);
      return { ...s, bytesToSite: b.toSite, bytesFromSite: b.fromSite, lastFitMetrics: s.lastFitMetrics && { ...s.lastFitMetrics }, lastEvalMetrics: s.lastEvalMetrics && { ...s.lastEvalMetrics } };
    });
  }
}
