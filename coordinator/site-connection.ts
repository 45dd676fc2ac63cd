/**
 * One site's connection on the coordinator: handshake (verify hello, check enrollment, answer welcome), then an
 * authenticated session in which the site must first send `ready`. Requests (fit/evaluate) are promises keyed
 * by round; replies that match no open request are answered with an error message, never thrown.
 */
import { createWelcome, verifyHello } from '../protocol/handshake.ts';
import type { Enrollment } from '../protocol/enrollment.ts';
import { ProtocolError } from '../protocol/errors.ts';
import type { Identity } from '../protocol/identity.ts';
import type { Logger } from '../protocol/common/index.ts';
import type { CoordinatorTransport } from '../protocol/memory-transport.ts';
import { PROTOCOL_VERSION, refusedSchema, type SecAggSetupContext, type EvalConfig, type FitConfig, type MessageOf, type ReplyError, type SessionMessage } from '../protocol/messages.ts';
import { SecureChannel, sealedPort } from '../protocol/secure-channel.ts';
import { SecureSession } from '../protocol/secure-session.ts';
import type { TransferStore } from '../protocol/transfer-store.ts';
import type { FailureCode } from './strategies/strategy.ts';

/** A failed request to a site, with the code the strategy will see. */
export class SiteRequestError extends Error {
  override readonly name = 'SiteRequestError';
  constructor(
    readonly code: FailureCode,
    reason: string,
  ) {
    super(reason);
  }
}

export type ConnectionState = 'handshaking' | 'awaiting_ready' | 'ready' | 'closed';

export interface SiteConnectionDeps {
  identity: Identity;
  enrollment: Enrollment;
  logger: Logger;
  handshakeTimeoutMs: number;
  maxEnvelopeBytes?: number;
  chunkBytes?: number;
  /** Receive store for a site's uploads; the same store across that site's connections enables resume. */
  transfersFor(siteId: string): TransferStore;
  onReady(conn: SiteConnection): void;
  onClosed(conn: SiteConnection): void;
  onReject(err: ProtocolError, conn: SiteConnection): void;
  onHandshake(outcome: 'ok' | ProtocolError['code'] | 'refused'): void;
}

type FitReply = MessageOf<'fitRes'>['reply'];
export type SecAggWireStage = MessageOf<'secaggIns'>['stage'];
type EvalReply = MessageOf<'evaluateRes'>['reply'];
type Pending = { resolve(m: SessionMessage): void; reject(e: Error): void };

export class SiteConnection {
  state: ConnectionState = 'handshaking';
  siteId: string | null = null;
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
      this.deps.logger.warn({ peer: transport.peer }, 'handshake timed out');
      this.deps.onHandshake('timeout');
      this.close();
    }, deps.handshakeTimeoutMs);
    transport.once('hello', (raw: unknown) => this.onHello(raw));
    // Sealed traffic before the handshake has no key to open it with: count it, drop it.
    const offEarly = transport.on('sealed', () => {
      if (this.state !== 'handshaking') return offEarly();
      this.deps.onReject(new ProtocolError('handshake_required', 'sealed envelope before handshake'), this);
    });
    transport.onClose(() => this.handleClose());
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
        this.deps.logger.warn({ peer: this.peer, siteId: hello.siteId, code: admission.code }, 'site refused');
        this.deps.onHandshake('refused');
        this.refuse({ code: admission.code, reason: admission.reason });
        return;
      }
      const { welcome, sessionKey } = createWelcome(this.deps.identity, hello);
      const session = new SecureSession(sessionKey, 'coordinator', this.deps.maxEnvelopeBytes ? { maxEnvelopeBytes: this.deps.maxEnvelopeBytes } : {});
      this.channel = new SecureChannel(sealedPort(this.transport), session, {
        ...(this.deps.chunkBytes ? { chunkBytes: this.deps.chunkBytes } : {}),
        transfers: this.deps.transfersFor(hello.siteId),
        onReject: (err) => {
          this.deps.logger.warn({ peer: this.peer, siteId: this.siteId, code: err.code }, 'rejected envelope');
          this.deps.onReject(err, this);
        },
      });
      this.channel.onMessage((m) => this.onMessage(m, hello.siteId));
      this.state = 'awaiting_ready';
      this.transport.send('welcome', welcome);
    } catch (e) {
      const err = e instanceof ProtocolError ? e : new ProtocolError('malformed', String(e));
      this.deps.logger.warn({ peer: this.peer, code: err.code }, 'handshake rejected');
      this.deps.onHandshake(err.code);
      this.deps.onReject(err, this);
      this.refuse({ code: 'bad_request', reason: `handshake rejected: ${err.code}` });
    }
  }

  private onMessage(m: SessionMessage, helloSiteId: string): void {
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
        this.settle(`fit:${m.round}`, m);
        return;
      case 'evaluateRes':
        this.settle(`evaluate:${m.round}`, m);
        return;
      case 'secaggRes':
        this.settle(`secagg:${m.sessionId}:${m.stage}`, m);
        return;
      case 'statsRes':
        this.settle(`stats:${m.sessionId}`, m);
        return;
      case 'error':
        this.deps.logger.warn({ siteId: this.siteId, code: m.error.code, reason: m.error.reason }, 'site reported an error');
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

  private sendError(code: ReplyError['code'], reason: string): void {
    try {
      this.channel?.send({ v: PROTOCOL_VERSION, type: 'error', error: { code, reason } });
    } catch {
      /* closed */
    }
  }

  private expect(key: string): Promise<SessionMessage> {
    if (this.state !== 'ready') return Promise.reject(new SiteRequestError('disconnected', 'site is not connected'));
    this.pending.get(key)?.reject(new SiteRequestError('site_error', `request ${key} superseded`));
    return new Promise((resolve, reject) => this.pending.set(key, { resolve, reject }));
  }

  /** Abandon an open request (timeout): its late reply will be answered with `round_closed`. */
  cancel(kind: 'fit' | 'evaluate', round: number, err: Error): void {
    this.cancelKey(`${kind}:${round}`, err);
  }

  /** Abandon an open secure-aggregation stage request (`secagg:<sessionId>:<stage>`) or statistics request (`stats:<sessionId>`). */
  cancelKey(key: string, err: Error): void {
    const p = this.pending.get(key);
    this.pending.delete(key);
    p?.reject(err);
  }

  private async sendModel(modelId: string, modelBytes: Uint8Array): Promise<void> {
    if (this.lastModelId === modelId) return;
    await this.requireChannel().sendBlob(modelId, modelBytes);
    this.lastModelId = modelId;
  }

  private requireChannel(): SecureChannel {
    if (!this.channel || this.state !== 'ready') throw new SiteRequestError('disconnected', 'site is not connected');
    return this.channel;
  }

  /** Ask the site to train; resolves with its reply and the encoded update bytes. */
  async fit(round: number, config: FitConfig, modelId: string, modelBytes: Uint8Array): Promise<{ numExamples: number; metrics: Record<string, number>; update: Uint8Array }> {
    const reply = this.expect(`fit:${round}`);
    reply.catch(() => {}); // observed below; avoids an unhandled rejection if sending fails first
    const channel = this.requireChannel();
    channel.send({ v: PROTOCOL_VERSION, type: 'fitIns', round, config, modelId, modelIncluded: this.lastModelId !== modelId });
    await this.sendModel(modelId, modelBytes).catch((e) => this.rethrow(e));
    const m = (await reply) as MessageOf<'fitRes'>;
    const r: FitReply = m.reply;
    if (!r.ok) throw new SiteRequestError('site_error', `${r.error.code}: ${r.error.reason}`);
    const update = await channel.receiveBlob(r.updateId).catch((e) => this.rethrow(e));
    return { numExamples: r.numExamples, metrics: r.metrics, update };
  }

  /** Ask the site to evaluate the given model on its local validation data. */
  async evaluate(round: number, config: EvalConfig, modelId: string, modelBytes: Uint8Array): Promise<{ numExamples: number; metrics: Record<string, number> }> {
    const reply = this.expect(`evaluate:${round}`);
    reply.catch(() => {});
    const channel = this.requireChannel();
    channel.send({ v: PROTOCOL_VERSION, type: 'evaluateIns', round, config, modelId, modelIncluded: this.lastModelId !== modelId });
    await this.sendModel(modelId, modelBytes).catch((e) => this.rethrow(e));
    const m = (await reply) as MessageOf<'evaluateRes'>;
    const r: EvalReply = m.reply;
    if (!r.ok) throw new SiteRequestError('site_error', `${r.error.code}: ${r.error.reason}`);
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
    setup?: { context: Omit<SecAggSetupContext, 'modelIncluded'>; modelBytes: Uint8Array },
  ): Promise<{ message: Record<string, unknown>; masked: Uint8Array | null }> {
    const reply = this.expect(`secagg:${sessionId}:${stage}`);
    reply.catch(() => {});
    const channel = this.requireChannel();
    const ctx = setup ? { ...setup.context, modelIncluded: this.lastModelId !== setup.context.modelId } : undefined;
    channel.send({ v: PROTOCOL_VERSION, type: 'secaggIns', sessionId, stage, instruction, ...(ctx ? { setup: ctx } : {}) });
    if (setup) await this.sendModel(setup.context.modelId, setup.modelBytes).catch((e) => this.rethrow(e));
    const m = (await reply) as MessageOf<'secaggRes'>;
    const r = m.reply;
    if (!r.ok) throw new SiteRequestError('site_error', `${r.error.code}: ${r.error.reason}`);
    const masked = r.maskedId ? await channel.receiveBlob(r.maskedId).catch((e) => this.rethrow(e)) : null;
    return { message: r.message, masked };
  }

  /** Ask the site to compute named statistics on a model; resolves with their layout (names and lengths only). */
  async statistics(
    sessionId: string,
    round: number,
    name: string,
    config: Record<string, number | string | boolean>,
    modelId: string,
    modelBytes: Uint8Array,
  ): Promise<{ name: string; length: number }[]> {
    const reply = this.expect(`stats:${sessionId}`);
    reply.catch(() => {});
    const channel = this.requireChannel();
    channel.send({ v: PROTOCOL_VERSION, type: 'statsIns', sessionId, round, name, config, modelId, modelIncluded: this.lastModelId !== modelId });
    await this.sendModel(modelId, modelBytes).catch((e) => this.rethrow(e));
    const m = (await reply) as MessageOf<'statsRes'>;
    if (!m.reply.ok) throw new SiteRequestError('site_error', `${m.reply.error.code}: ${m.reply.error.reason}`);
    return m.reply.entries;
  }

  private rethrow(e: unknown): never {
    if (e instanceof SiteRequestError) throw e;
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

  close(): void {
    this.transport.disconnect();
    this.handleClose();
  }

  private handleClose(): void {
    if (this.state === 'closed') return;
    const wasReady = this.state === 'ready';
    this.state = 'closed';
    this.clearHandshakeTimer();
    this.channel?.close();
    const err = new SiteRequestError('disconnected', `site ${this.siteId ?? this.peer} disconnected`);
    for (const p of this.pending.values()) p.reject(err);
    this.pending.clear();
    if (wasReady) this.deps.onClosed(this);
  }
}
