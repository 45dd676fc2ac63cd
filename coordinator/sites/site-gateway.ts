/**
 * Where a site's transport enters the coordinator: one SiteConnection per transport, wired to the registry, the
 * receive stores that outlive connections (an upload cut by a disconnect resumes by chunk index), the persisted
 * enrollment (a spent one-time token must stay spent after a restart), metrics and logs.
 */
import { DEFAULT_MAX_ENVELOPE_BYTES, TransferStore, type CoordinatorTransport, type Enrollment, type Identity } from '../../protocol/index.ts';
import type { Logger } from '../../protocol/common/index.ts';
import type { CoordinatorMetrics } from '../metrics/index.ts';
import { ByteBudgetExceeded, type SiteByteBudget } from './byte-budget.ts';
import { SiteConnection } from './site-connection.ts';
import type { SiteRegistry } from './site-registry.ts';

export interface SiteEvents {
  siteConnected: [siteId: string];
  siteDisconnected: [siteId: string];
}

export interface GatewayDeps {
  identity: Identity;
  enrollment: Enrollment;
  registry: SiteRegistry;
  logger: Logger;
  metrics: CoordinatorMetrics;
  /** Where siteConnected / siteDisconnected are emitted. */
  events: { emit<K extends keyof SiteEvents>(event: K, ...args: SiteEvents[K]): boolean };
  handshakeMs: number;
  maxUpdateBytes: number;
  chunkBytes?: number;
  /** Where token enrollments are written back (none: kept in memory only). */
  enrollmentPath?: string;
  /** Bytes each site may send per round (checked per envelope and per transfer announcement). */
  budget: SiteByteBudget;
  /** Partial uploads idle longer than this are dropped and their memory released. */
  partialTransferTtlMs: number;
  /** Called for a session that completed its handshake / closed (status, connection limits). */
  onAuthenticated(conn: SiteConnection): void;
  onReleased(conn: SiteConnection): void;
  /** Whether the run is over: a site that connects then is told to finish at once. */
  finished(): { done: boolean; lastRound: number };
}

export class SiteGateway {
  private readonly connections = new Set<SiteConnection>();
  private readonly uploadStores = new Map<string, TransferStore>();
  private enrollmentSaves: Promise<void> = Promise.resolve();
  private closing = false;
  private readonly sweeper: ReturnType<typeof setInterval>;

  constructor(private readonly d: GatewayDeps) {
    if (d.enrollmentPath) {
      const path = d.enrollmentPath;
      d.enrollment.onEnrolled = (siteId) => {
        d.logger.info({ code: 'site_enrolled', siteId }, 'site enrolled with a one-time token');
        // Saves are chained (never two writers on the temp file) and awaited by close().
        this.enrollmentSaves = this.enrollmentSaves.then(() =>
          d.enrollment.save(path).catch((e: Error) => d.logger.error({ code: 'enrollment_save_failed', err: e.message, path }, 'could not persist enrollment')),
        );
      };
    }
    this.sweeper = setInterval(() => this.sweepTransfers(), Math.max(1000, Math.min(d.partialTransferTtlMs / 2, 30_000)));
    this.sweeper.unref();
  }

  /** Receive store per site id: outlives connections, so an update upload cut by a disconnect resumes. */
  private transfersFor(siteId: string): TransferStore {
    let st = this.uploadStores.get(siteId);
    if (!st) {
      const budget = this.d.budget;
      st = new TransferStore({
        maxChunkBytes: DEFAULT_MAX_ENVELOPE_BYTES,
        maxTransferBytes: this.d.maxUpdateBytes,
        maxPartials: 2,
        maxCompleted: 2,
        // Refused before its buffer is allocated when the announced size does not fit the site's budget this round.
        admit: (m) => {
          if (!budget.admitTransfer(siteId, m.totalBytes)) throw new ByteBudgetExceeded(`transfer ${m.transferId} of ${m.totalBytes} bytes: site ${siteId} is ${budget.reason(siteId)}`);
        },
      });
      this.uploadStores.set(siteId, st);
    }
    return st;
  }

  /** Drop partial uploads nobody continued within the TTL (a site that started 200 MiB and walked away). */
  sweepTransfers(now = Date.now()): void {
    for (const [siteId, st] of this.uploadStores) {
      for (const dropped of st.expire(now - this.d.partialTransferTtlMs)) {
        this.d.metrics.limitRefusals.inc({ reason: 'transfer_expired' });
        this.d.logger.warn({ code: 'transfer_expired', siteId, transferId: dropped.transferId, bytes: dropped.totalBytes, received: dropped.receivedBytes }, 'partial upload abandoned; its memory was released');
      }
    }
  }

  accept(transport: CoordinatorTransport): void {
    if (this.closing) return transport.disconnect();
    const d = this.d;
    const conn: SiteConnection = new SiteConnection(transport, {
      identity: d.identity,
      enrollment: d.enrollment,
      logger: d.logger,
      handshakeTimeoutMs: d.handshakeMs,
      ...(d.chunkBytes ? { chunkBytes: d.chunkBytes } : {}),
      transfersFor: (siteId) => this.transfersFor(siteId),
      budget: d.budget,
      onHandshake: (outcome) => d.metrics.handshakes.inc({ outcome }),
      onReject: (err) => d.metrics.rejected.inc({ code: err.code }),
      onReady: (c) => this.ready(c),
      onClosed: (c) => this.closed(c),
    });
    this.connections.add(conn);
    transport.onClose(() => this.connections.delete(conn));
  }

  private ready(c: SiteConnection): void {
    const d = this.d;
    d.registry.add(c);
    d.metrics.connectedSites.set(d.registry.size);
    d.onAuthenticated(c);
    d.logger.info({ code: 'site_connected', siteId: c.siteId, peer: c.peer }, 'site connected');
    d.events.emit('siteConnected', c.siteId as string);
    const f = d.finished();
    if (f.done) c.finish('all rounds completed', f.lastRound);
  }

  private closed(c: SiteConnection): void {
    const d = this.d;
    d.registry.remove(c);
    this.connections.delete(c);
    d.onReleased(c);
    d.metrics.connectedSites.set(d.registry.size);
    // A missed heartbeat or a transport error is worth a warning: under CPU load it is the first sign of sites dropped mid-round.
    const unexpected = c.closeReason === 'heartbeat_timeout' || c.closeReason === 'transport_error';
    d.logger[unexpected ? 'warn' : 'info']({ code: 'site_disconnected', siteId: c.siteId, peer: c.peer, reason: c.closeReason }, `site disconnected (${c.closeReason})`);
    d.events.emit('siteDisconnected', c.siteId as string);
  }

  /**
   * A new round starts: close the connections that dropped envelopes over the byte budget (their site may be waiting
   * for an answer to an envelope it will never get); the site reconnects with a clean session.
   */
  resetOverBudget(): void {
    for (const c of [...this.connections]) {
      if (!c.droppedEnvelopes) continue;
      this.d.logger.info({ code: 'byte_budget_reset', siteId: c.siteId, peer: c.peer }, 'closing a connection that dropped envelopes over the byte budget last round');
      c.close();
    }
  }

  /** Refuse new sites, disconnect the open ones, and wait for pending enrollment saves. */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.sweeper);
    for (const c of [...this.connections]) c.close();
    await this.enrollmentSaves;
  }
}
