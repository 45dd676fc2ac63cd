/**
 * One site's connection on the coordinator: handshake (verify hello, check enrollment, answer welcome), then an
 * authenticated session in which the site must first send `ready`. Every request is one `exchange`: register the
 * expected reply, send the instruction (with the model as a chunked transfer unless the site holds it), await the
 * reply, refuse an error reply, and receive the attached blob if the reply names one. Replies that match no open
 * request are answered with an error message, never thrown.
 */
import {
  createWelcome,
  PROTOCOL_VERSION,
  ProtocolError,
  refusedSchema,
  sealedPort,
  type SealedPort,
  SecureChannel,
  SecureSession,
  verifyHello,
  type CoordinatorTransport,
  type Enrollment,
  type EvalConfig,
  type FitConfig,
  type CloseReason,
  type Identity,
  type MessageOf,
  type ReplyError,
  type SecAggSetupContext,
  type SessionMessage,
  type TransferStore,
} from '../../protocol/index.ts';
import type { Logger } from '../../protocol/common/index.ts';
import { keyOfReply, requestKey, SiteRequestError, type OkReply, type ReplyType, type SecAggWireStage } from './request-keys.ts';
import { ByteBudgetExceeded, type SiteByteBudget } from './byte-budget.ts';

export type ConnectionState = 'handshaking' | 'awaiting_ready' | 'ready' | 'closed';

/** What the coordinator knows about a connection for its status page (no payloads). */
export interface ConnectionActivity {
  /** The request in progress (`fit r3`, `secagg:share-keys`...) or null. */
  current: string | null;
  /** When the site last sent anything (ISO time). */
  lastSeen: string;
}

export interface SiteConnectionDeps {
  identity: Identity;
  enrollment: Enrollment;
  logger: Logger;
  handshakeTimeoutMs: number;
  maxEnvelopeBytes?: number;
  chunkBytes?: number;
  /** Receive store for a site's uploads; the same store across that site's connections enables resume. */
  transfersFor(siteId: string): TransferStore;
  /** Bytes each site may send per round: envelopes are counted before they are opened. */
  budget: SiteByteBudget;
  onReady(conn: SiteConnection): void;
  onClosed(conn: SiteConnection): void;
  onReject(err: ProtocolError, conn: SiteConnection): void;
  onHandshake(outcome: 'ok' | ProtocolError['code'] | 'refused'): void;
}

type Pending = { resolve(m: SessionMessage): void; reject(e: Error): void };

export class SiteConnection {
  state: ConnectionState = 'handshaking';
  siteId: string | null = null;
  readonly activity: ConnectionActivity = { current: null, lastSeen: new Date().toISOString() };
  private channel: SecureChannel | null = null;
  private handshakeTimer: ReturnType<typeof setTimeout> | null;
  private readonly pending = new Map<string, Pending>();
  /** Model id the site already holds, so the same global is not sent twice (fit of round r+1 after evaluate of r). */
  private lastModelId: string | null = null;

  constructor(
    private readonly transport: CoordinatorTransport,
    private readonly deps: SiteConnectionDeps,
  ) {
    this.handshakeTimer = setTimeout(() => {
      this.deps.logger.warn({ code: 'handshake_timeout', peer: transport.peer, timeoutMs: deps.handshakeTimeoutMs }, 'handshake timed out');
      this.deps.onHandshake('timeout');
      this.close();
    }, deps.handshakeTimeoutMs);
    transport.once('hello', (raw: unknown) => this.onHello(raw));
    // Sealed traffic before the handshake has no key to open it with: count it, drop it.
    const offEarly = transport.on('sealed', () => {
      if (this.state !== 'handshaking') return offEarly();
      this.deps.onReject(new ProtocolError('handshake_required', 'sealed envelope before handshake'), this);
    });
    transport.onClose((reason) => this.handleClose(reason));
  }

  get peer(): string {
    return this.transport.peer;
  }

  get stats() {
    return this.channel?.stats ?? null;
  }

  private clearHandshakeTimer(): void {
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = null;
  }

  private refuse(error: ReplyError): void {
    // Validated on send like every message; reasons are ours, so only an over-long one could fail (then truncated).
    const msg = refusedSchema.parse({ v: PROTOCOL_VERSION, type: 'refused', error: { code: error.code, reason: error.reason.slice(0, 500) } });
    this.transport.send('refused', msg);
    this.close();
  }

  private onHello(raw: unknown): void {
    if (this.state !== 'handshaking') return;
    try {
      const hello = verifyHello(raw);
      const admission = this.deps.enrollment.admit(hello.siteId, hello.identityKey, hello.tokenProof);
      if (!admission.ok) {
        this.deps.logger.warn({ code: admission.code, peer: this.peer, siteId: hello.siteId }, `site refused: ${admission.reason}`);
        this.deps.onHandshake('refused');
        this.refuse({ code: admission.code, reason: admission.reason });
        return;
      }
      const { welcome, sessionKey } = createWelcome(this.deps.identity, hello);
      const session = new SecureSession(sessionKey, 'coordinator', this.deps.maxEnvelopeBytes ? { maxEnvelopeBytes: this.deps.maxEnvelopeBytes } : {});
      this.channel = new SecureChannel(this.budgetedPort(hello.siteId), session, {
        ...(this.deps.chunkBytes ? { chunkBytes: this.deps.chunkBytes } : {}),
        transfers: this.deps.transfersFor(hello.siteId),
        onReject: (err) => {
          if (err instanceof ByteBudgetExceeded) return this.overBudget(hello.siteId); // logged and counted by the budget
          this.deps.logger.warn({ code: err.code, peer: this.peer, siteId: this.siteId }, `rejected envelope: ${err.message}`);
          this.deps.onReject(err, this);
        },
      });
      this.channel.onMessage((m) => this.onMessage(m, hello.siteId));
      this.state = 'awaiting_ready';
      this.transport.send('welcome', welcome);
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('malformed', String(e));
      this.deps.logger.warn({ code: err.code, peer: this.peer }, `handshake rejected: ${err.message}`);
      this.deps.onHandshake(err.code);
      this.deps.onReject(err, this);
      this.refuse({ code: 'bad_request', reason: `handshake rejected: ${err.code}` });
    }
  }

  /**
   * The session's sealed port with the byte budget in front: an envelope over the site's budget for this round is
   * dropped before it is opened. A reconnecting site's `ready` is counted but always let through, so a refused site
   * is not locked out of its next round.
   */
  private budgetedPort(siteId: string): SealedPort {
    const port = sealedPort(this.transport);
    const size = (e: unknown): number => (e instanceof Uint8Array ? e.length : 0);
    return {
      ...port,
      onSealed: (l) =>
        port.onSealed((e) => {
          if (this.state === 'awaiting_ready') this.deps.budget.charge(siteId, size(e));
          else if (!this.deps.budget.receive(siteId, size(e))) {
            this.droppedEnvelopes = true;
            return this.overBudget(siteId);
          }
          l(e);
        }),
    };
  }

  /** Refused by the budget: this round's open requests fail with `byte_budget` and the site's partial uploads are freed. */
  private overBudget(siteId: string): void {
    if (this.pending.size === 0 && this.refusedNotice) return;
    const err = new SiteRequestError('byte_budget', `site ${siteId} is ${this.deps.budget.reason(siteId)}`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    const store = this.deps.transfersFor(siteId);
    store.rejectAll(err);
    // The site's uploads in flight are told by id (it stops waiting for acks); their buffers are released.
    for (const t of store.expire(Infinity)) this.sendError('bad_request', `byte_budget: transfer refused`, t.transferId);
    if (!this.refusedNotice) this.sendError('bad_request', `byte_budget: ${err.message}`);
    this.refusedNotice = true;
  }

  /** Whether the site was told it is over budget on this connection. */
  private refusedNotice = false;

  /**
   * Whether envelopes were dropped unopened on this connection: one may have started an upload the site still waits
   * to hear about, so the gateway closes the connection when the round ends (the site reconnects with a clean session).
   */
  droppedEnvelopes = false;

  private onMessage(m: SessionMessage, helloSiteId: string): void {
    this.activity.lastSeen = new Date().toISOString();
    switch (m.type) {
      case 'ready':
        if (this.state !== 'awaiting_ready' || m.siteId !== helloSiteId) {
          this.sendError('bad_request', 'unexpected ready');
          return;
        }
        this.clearHandshakeTimer();
        this.siteId = helloSiteId;
        this.state = 'ready';
        this.deps.onHandshake('ok');
        this.deps.onReady(this);
        return;
      case 'fitRes':
      case 'evaluateRes':
      case 'secaggRes':
      case 'statsRes':
        this.settle(keyOfReply(m), m);
        return;
      case 'error':
        this.deps.logger.warn({ code: 'site_reported_error', siteId: this.siteId, siteCode: m.error.code, reason: m.error.reason }, 'site reported an error');
        return;
      case 'fitIns':
      case 'evaluateIns':
      case 'secaggIns':
      case 'statsIns':
      case 'finish':
      case 'transferStart':
      case 'transferResume':
      case 'chunk':
      case 'chunkAck':
        this.sendError('bad_request', `a site may not send ${m.type}`);
        return;
      default: {
        const never: never = m;
        throw new Error(`unhandled ${String(never)}`);
      }
    }
  }

  private settle(key: string, m: SessionMessage): void {
    const p = this.pending.get(key);
    if (!p || this.state !== 'ready') {
      this.sendError('round_closed', `no open request ${key}`);
      return;
    }
    this.pending.delete(key);
    p.resolve(m);
  }

  private sendError(code: ReplyError['code'], reason: string, transferId?: string): void {
    try {
      this.channel?.send({ v: PROTOCOL_VERSION, type: 'error', error: { code, reason }, ...(transferId ? { transferId } : {}) });
    } catch {
      /* closed */
    }
  }

  /** Abandon an open request (timeout, stop): its late reply will be answered with `round_closed`. */
  cancel(key: string, err: Error): void {
    const p = this.pending.get(key);
    this.pending.delete(key);
    p?.reject(err);
  }

  private requireChannel(): SecureChannel {
    if (!this.channel || this.state !== 'ready') throw new SiteRequestError('disconnected', 'site is not connected');
    return this.channel;
  }

  /**
   * The request sequence every exchange shares: expect the reply under `key`, send the instruction (told whether the
   * model follows), send the model unless the site already holds it, await the reply and refuse an error reply.
   */
  private async exchange<T extends ReplyType>(
    key: string,
    instruction: (modelIncluded: boolean) => SessionMessage,
    model: { id: string; bytes: Uint8Array } | null,
  ): Promise<OkReply<T>> {
    if (this.state !== 'ready') throw new SiteRequestError('disconnected', 'site is not connected');
    if (this.siteId && this.deps.budget.isRefused(this.siteId)) throw new SiteRequestError('byte_budget', `site ${this.siteId} is ${this.deps.budget.reason(this.siteId)}`);
    this.refusedNotice = false;
    this.pending.get(key)?.reject(new SiteRequestError('site_error', `request ${key} superseded`));
    const reply = new Promise<SessionMessage>((resolve, reject) => this.pending.set(key, { resolve, reject }));
    reply.catch(() => {}); // observed below; avoids an unhandled rejection if sending fails first
    this.activity.current = key;
    try {
      const channel = this.requireChannel();
      const modelIncluded = model !== null && this.lastModelId !== model.id;
      channel.send(instruction(modelIncluded));
      if (model && modelIncluded) {
        // A request failed meanwhile (byte budget, timeout, close) also ends the wait for the download's acks.
        const sending = channel.sendBlob(model.id, model.bytes);
        sending.catch(() => {});
        await Promise.race([sending, reply.then(() => sending)]).catch((e) => this.rethrow(e));
        this.lastModelId = model.id;
      }
      const body = ((await reply) as unknown as { reply: { ok: true } | { ok: false; error: ReplyError } }).reply;
      if (!body.ok) throw new SiteRequestError('site_error', `${body.error.code}: ${body.error.reason}`);
      return body as OkReply<T>;
    } finally {
      if (this.activity.current === key) this.activity.current = null;
    }
  }

  private receive(blobId: string): Promise<Uint8Array> {
    return this.requireChannel()
      .receiveBlob(blobId)
      .catch((e) => this.rethrow(e));
  }

  /** Ask the site to train; resolves with its reply and the encoded update bytes. */
  async fit(round: number, config: FitConfig, model: { id: string; bytes: Uint8Array }) {
    const r = await this.exchange<'fitRes'>(requestKey.fit(round), (modelIncluded) => ({ v: PROTOCOL_VERSION, type: 'fitIns', round, config, modelId: model.id, modelIncluded }), model);
    return { numExamples: r.numExamples, metrics: r.metrics, update: await this.receive(r.updateId) };
  }

  /** Ask the site to evaluate the given model on its local validation data. */
  async evaluate(round: number, config: EvalConfig, model: { id: string; bytes: Uint8Array }) {
    const r = await this.exchange<'evaluateRes'>(
      requestKey.evaluate(round),
      (modelIncluded) => ({ v: PROTOCOL_VERSION, type: 'evaluateIns', round, config, modelId: model.id, modelIncluded }),
      model,
    );
    return { numExamples: r.numExamples, metrics: r.metrics };
  }

  /**
   * One secure-aggregation stage: send the instruction (with the setup context and the model for `setup`), resolve
   * with the site's JSON reply and, for the masked-vector stage, the masked vector's bytes (a chunked transfer).
   */
  async secagg(
    sessionId: string,
    stage: SecAggWireStage,
    instruction: Record<string, unknown>,
    setup?: { context: Omit<SecAggSetupContext, 'modelIncluded'>; model: { id: string; bytes: Uint8Array } },
  ): Promise<{ message: Record<string, unknown>; masked: Uint8Array | null }> {
    const r = await this.exchange<'secaggRes'>(
      requestKey.secagg(sessionId, stage),
      (modelIncluded) => ({ v: PROTOCOL_VERSION, type: 'secaggIns', sessionId, stage, instruction, ...(setup ? { setup: { ...setup.context, modelIncluded } } : {}) }),
      setup ? setup.model : null,
    );
    return { message: r.message, masked: r.maskedId ? await this.receive(r.maskedId) : null };
  }

  /** Ask the site to compute named statistics on a model; resolves with their layout (names and lengths only). */
  async statistics(sessionId: string, round: number, name: string, config: Record<string, number | string | boolean>, model: { id: string; bytes: Uint8Array }) {
    const r = await this.exchange<'statsRes'>(
      requestKey.statistics(sessionId),
      (modelIncluded) => ({ v: PROTOCOL_VERSION, type: 'statsIns', sessionId, round, name, config, modelId: model.id, modelIncluded }),
      model,
    );
    return r.entries;
  }

  private rethrow(e: unknown): never {
    if (e instanceof SiteRequestError) throw e;
    if (this.siteId && this.deps.budget.isRefused(this.siteId)) throw new SiteRequestError('byte_budget', `site ${this.siteId} is ${this.deps.budget.reason(this.siteId)}`);
    if (e instanceof ProtocolError && e.code === 'closed') throw new SiteRequestError('disconnected', 'site disconnected');
    throw new SiteRequestError('invalid_reply', (e as Error).message);
  }

  /** Tell the site training is over. */
  finish(reason: string, lastRound: number): void {
    try {
      this.channel?.send({ v: PROTOCOL_VERSION, type: 'finish', reason, lastRound });
    } catch {
      /* closed */
    }
  }

  /** Why the connection closed (null while open): `heartbeat_timeout` is a site whose event loop or link stalled. */
  closeReason: CloseReason | null = null;

  close(): void {
    this.transport.disconnect();
    this.handleClose('local');
  }

  private handleClose(reason: CloseReason): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.closeReason = reason;
    this.clearHandshakeTimer();
    this.channel?.close();
    const err = new SiteRequestError('disconnected', `site ${this.siteId ?? this.peer} disconnected (${reason})`, reason === 'peer_left');
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (wasReady) this.deps.onClosed(this);
  }
}
