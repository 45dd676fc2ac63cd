/**
 * Keeps what `GET /status` reports and nothing else needs: per-site byte totals over closed sessions, last replies
 * and failures, and the secure-aggregation run in progress. Fed by the connection callbacks, the round runner's
 * events and the SecAgg monitor; read with `status()`.
 */
import type { PrivacyStatus, RoundFailure } from '../strategies/index.ts';
import type { RunPrivacyReport } from '../../protocol/privacy/index.ts';
import type { RoundRecord, RunOutcome, Stage } from '../rounds/index.ts';
import type { SiteConnection, SiteRegistry } from '../sites/index.ts';
import type { SecAggMonitor, SiteReply } from '../workflows/index.ts';
import { TIMELINE_LENGTH, type ByteBudgetStatus, type CoordinatorStatus, type SecAggRunStatus, type SiteStatus, type TimelineEntry } from './status.ts';

interface SiteTotals {
  bytesSent: number;
  bytesReceived: number;
  sessions: number;
  lastSeen: string | null;
  lastRound: number | null;
  lastFitMetrics: Record<string, number> | null;
  lastEvalMetrics: Record<string, number> | null;
  lastFailure: (RoundFailure & { round: number }) | null;
}

export interface StatusBase {
  stage: Stage;
  round: number;
  rounds: number;
  minSites: number;
  strategy: string;
  coordinatorKey: string;
  history: readonly RoundRecord[];
  outcome: RunOutcome | null;
  privacy: PrivacyStatus | null;
  /** Training and statistics releases composed (start-coordinator.ts), null when nothing is DP. */
  privacyLedger?: RunPrivacyReport | null;
  byteBudget?: ByteBudgetStatus;
}

function timelineEntry(r: RoundRecord): TimelineEntry {
  return {
    round: r.round,
    startedAt: r.startedAt,
    durationMs: r.durationMs,
    aggregated: r.aggregated,
    failures: r.failures.map((f) => ({ ...f })),
    strategyError: r.strategyError ?? null,
    secureAggregation: r.secureAggregation ? { included: [...r.secureAggregation.included], excluded: [...r.secureAggregation.excluded], error: r.secureAggregation.error } : null,
  };
}

export class StatusTracker {
  private readonly totals = new Map<string, SiteTotals>();
  private readonly startedAt = new Date().toISOString();
  private secAggRun: SecAggRunStatus | null = null;
  private runsCompleted = 0;
  private runsAborted = 0;
  private lastSecAggError: string | null = null;

  constructor(
    private readonly registry: SiteRegistry,
    private readonly enrolled: () => string[],
    private readonly secure: { clip: number; maxExamples: number } | null,
  ) {}

  private site(siteId: string): SiteTotals {
    let t = this.totals.get(siteId);
    if (!t) {
      t = { bytesSent: 0, bytesReceived: 0, sessions: 0, lastSeen: null, lastRound: null, lastFitMetrics: null, lastEvalMetrics: null, lastFailure: null };
      this.totals.set(siteId, t);
    }
    return t;
  }

  connected(conn: SiteConnection): void {
    this.site(conn.siteId as string).sessions++;
  }

  /** A session closed: its byte counts move into the site's totals. */
  closed(conn: SiteConnection): void {
    const t = this.site(conn.siteId as string);
    t.bytesSent += conn.stats?.bytesSent ?? 0;
    t.bytesReceived += conn.stats?.bytesReceived ?? 0;
    t.lastSeen = conn.activity.lastSeen;
  }

  replied(r: SiteReply & { round: number }): void {
    if (r.siteId === 'secure-aggregate') return; // the secure sum is not a site
    const t = this.site(r.siteId);
    t.lastRound = r.round;
    if (r.stage === 'fit') t.lastFitMetrics = { ...r.metrics };
    else t.lastEvalMetrics = { ...r.metrics };
  }

  failed(f: RoundFailure & { round: number }): void {
    this.site(f.siteId).lastFailure = { ...f };
  }

  /** Total sealed bytes over every session, closed and open (Prometheus counters read these at scrape time). */
  bytes(): { sent: number; received: number } {
    let sent = 0;
    let received = 0;
    for (const t of this.totals.values()) {
      sent += t.bytesSent;
      received += t.bytesReceived;
    }
    for (const c of this.registry.all()) {
      sent += c.stats?.bytesSent ?? 0;
      received += c.stats?.bytesReceived ?? 0;
    }
    return { sent, received };
  }

  readonly secAggMonitor: SecAggMonitor = {
    started: (run) => {
      this.secAggRun = { ...run, participants: [...run.participants], stage: 'setup', responded: [], dropped: [] };
    },
    stage: (sessionId, stage) => {
      if (this.secAggRun?.sessionId === sessionId) this.secAggRun = { ...this.secAggRun, stage, responded: [] };
    },
    replied: (sessionId, siteId) => {
      if (this.secAggRun?.sessionId === sessionId) this.secAggRun.responded.push(siteId);
    },
    dropped: (sessionId, siteId) => {
      if (this.secAggRun?.sessionId === sessionId && !this.secAggRun.dropped.includes(siteId)) this.secAggRun.dropped.push(siteId);
    },
    ended: (sessionId, error) => {
      if (this.secAggRun?.sessionId === sessionId) this.secAggRun = null;
      if (error === null) this.runsCompleted++;
      else {
        this.runsAborted++;
        this.lastSecAggError = error;
      }
    },
  };

  /** Bytes to and from one site over all its sessions (the dashboard's per-site view). */
  siteBytes(siteId: string): { toSite: number; fromSite: number } {
    const s = this.siteStatus(siteId);
    return { toSite: s.bytesSent, fromSite: s.bytesReceived };
  }

  private siteStatus(siteId: string): SiteStatus {
    const t = this.site(siteId);
    const conn = this.registry.get(siteId);
    return {
      siteId,
      connected: conn !== undefined,
      lastSeen: conn ? conn.activity.lastSeen : t.lastSeen,
      currentStage: conn?.activity.current ?? null,
      bytesSent: t.bytesSent + (conn?.stats?.bytesSent ?? 0),
      bytesReceived: t.bytesReceived + (conn?.stats?.bytesReceived ?? 0),
      sessions: t.sessions,
      lastRound: t.lastRound,
      lastFitMetrics: t.lastFitMetrics,
      lastEvalMetrics: t.lastEvalMetrics,
      lastFailure: t.lastFailure,
    };
  }

  status(base: StatusBase): CoordinatorStatus {
    const ids = [...new Set([...this.enrolled(), ...this.totals.keys(), ...this.registry.ids()])].sort();
    return {
      stage: base.stage,
      round: base.round,
      rounds: base.rounds,
      minSites: base.minSites,
      connectedSites: this.registry.ids(),
      strategy: base.strategy,
      coordinatorKey: base.coordinatorKey,
      startedAt: this.startedAt,
      sites: ids.map((id) => this.siteStatus(id)),
      timeline: base.history.slice(-TIMELINE_LENGTH).map(timelineEntry),
      secureAggregation: {
        enabled: this.secure !== null,
        clip: this.secure?.clip ?? null,
        maxExamples: this.secure?.maxExamples ?? null,
        current: this.secAggRun ? { ...this.secAggRun, participants: [...this.secAggRun.participants], responded: [...this.secAggRun.responded], dropped: [...this.secAggRun.dropped] } : null,
        runsCompleted: this.runsCompleted,
        runsAborted: this.runsAborted,
        lastError: this.lastSecAggError,
      },
      outcome: base.outcome,
      privacy: base.privacy,
      privacyLedger: base.privacyLedger ?? null,
      ...(base.byteBudget ? { byteBudget: base.byteBudget } : {}),
    };
  }
}
