/**
 * One connection of a site to the coordinator: handshake over a Transport, then serve fit/evaluate
 * instructions in order until the coordinator says `finish` or the connection drops.
 */
import nacl from 'tweetnacl';
import { toHex } from '../../protocol/bytes.ts';
import { ProtocolError } from '../../protocol/errors.ts';
import { createHello, verifyWelcome } from '../../protocol/handshake.ts';
import type { Identity } from '../../protocol/identity.ts';
import type { Logger } from '../../protocol/common/index.ts';
import type { SiteTransport } from '../../protocol/memory-transport.ts';
import { cloneWeightSet, type WeightSet } from '../../protocol/named-tensor.ts';
import { PROTOCOL_VERSION, refusedSchema, type MessageOf, type ReplyError, type SessionMessage } from '../../protocol/messages.ts';
import { SecureChannel, sealedPort } from '../../protocol/secure-channel.ts';
import { SecureSession } from '../../protocol/secure-session.ts';
import { decodeWeightSet, encodeWeightSet } from '../../protocol/tensor-codec.ts';
import type { TransferStore } from '../../protocol/transfer-store.ts';
import type { LocalTrainer } from './local-trainer.ts';
import { handleSecAggInstruction, handleStatisticsInstruction, type SecAggSiteContext, type SiteSecAggState } from './secure-middleware.ts';

export type SiteErrorCode = 'bad_options' | 'refused' | 'wrong_coordinator' | 'handshake_failed' | 'aborted' | 'gave_up';

/** Why `runSite` stopped without the coordinator saying `finish`. */
export class SiteError extends Error {
  override readonly name = 'SiteError';
  constructor(
    readonly code: SiteErrorCode,
    reason: string,
    /** For 'refused': the coordinator's reply code (not_enrolled, wrong_key, bad_request). */
    readonly replyCode?: ReplyError['code'],
  ) {
    super(`${code}: ${reason}`);
  }
}

/** Progress notifications for a caller that prints or audits (what was sent, how many bytes). */
export type SiteProgress =
  /** A session is established; `attempt` counts connections made by this runSite call (1 = first). */
  | { type: 'connected'; attempt: number }
  | {
      type: 'fit';
      round: number;
      numExamples: number;
      metrics: Record<string, number>;
      updateBytes: number;
      /** First chunk sent on this connection (> 0 when an interrupted upload resumed). */
      resumedFrom: number;
      /** True when the result was re-sent from cache after a reconnect instead of training again. */
      reused: boolean;
      /** True under secure aggregation: only the masked vector (`updateBytes` long) left the site. */
      secure?: boolean;
    }
  /** A statistics round's masked vector was sent (`name`: which statistic, e.g. source-stats, class-histogram). */
  | { type: 'statistics'; round: number; name: string; maskedBytes: number }
  | { type: 'evaluate'; round: number; numExamples: number; metrics: Record<string, number> }
  | { type: 'failed'; round: number; stage: 'fit' | 'evaluate'; reason: string }
  | { type: 'disconnected'; bytesSent: number; bytesReceived: number }
  | { type: 'finished'; lastRound: number };

export interface SessionContext {
  siteId: string;
  identity: Identity;
  coordinatorKey: Uint8Array;
  trainer: LocalTrainer;
  logger: Logger;
  transfers: TransferStore;
  enrollmentToken?: string;
  handshakeTimeoutMs: number;
  chunkBytes?: number;
  onProgress(p: SiteProgress): void;
  /** Last global model received, kept across reconnects (the coordinator may skip re-sending it). */
  model: { id: string; weights: WeightSet } | null;
  /**
   * Last fit (in progress or done), kept so a request re-issued after a reconnect is answered without training
   * again — including while the first training run is still going.
   */
  lastFit: { round: number; modelId: string; result: Promise<CachedFit> } | null;
  /** Secure-aggregation sessions, computed statistics and pinned peer keys (outlive connections). */
  secagg: SiteSecAggState;
}

export interface CachedFit {
  updateId: string;
  update: Uint8Array;
  numExamples: number;
  metrics: Record<string, number>;
}

export type SessionOutcome = { kind: 'finished'; lastRound: number } | { kind: 'disconnected'; handshaken: boolean };

/** Keep only finite numbers (JSON cannot carry NaN/Infinity, and the schema would refuse the whole reply). */
function finiteMetrics(m: Record<string, number>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, v] of Object.entries(m ?? {}).slice(0, 64)) if (typeof v === 'number' && Number.isFinite(v)) out[k.slice(0, 64)] = v;
  return out;
}

/** Handshake on `transport` and serve until finish or disconnect. Throws SiteError for fatal handshake outcomes. */
export function runSession(transport: SiteTransport, ctx: SessionContext, signal?: AbortSignal): Promise<SessionOutcome> {
  return new Promise<SessionOutcome>((resolve, reject) => {
    let channel: SecureChannel | null = null;
    let settled = false;
    let finished: number | null = null;
    let queue: Promise<void> = Promise.resolve();
    const state = createHello(ctx.identity, ctx.siteId, ctx.enrollmentToken);
    const timer = setTimeout(() => end(new SiteError('handshake_failed', `no welcome within ${ctx.handshakeTimeoutMs} ms`)), ctx.handshakeTimeoutMs);

    const end = (result: SessionOutcome | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      if (channel) {
        ctx.onProgress({ type: 'disconnected', bytesSent: channel.stats.bytesSent, bytesReceived: channel.stats.bytesReceived });
        channel.close();
      } else transport.disconnect();
      if (result instanceof Error) reject(result);
      else resolve(result);
    };
    const onAbort = (): void => end(new SiteError('aborted', 'aborted by caller'));
    if (signal?.aborted) return onAbort();
    signal?.addEventListener('abort', onAbort, { once: true });

    transport.onClose(() => {
      // A finish received before the close wins.
      if (finished !== null) end({ kind: 'finished', lastRound: finished });
      else end({ kind: 'disconnected', handshaken: channel !== null });
    });
    transport.once('refused', (raw: unknown) => {
      const r = refusedSchema.safeParse(raw);
      const err = r.success ? r.data.error : { code: 'bad_request' as const, reason: 'malformed refusal' };
      end(new SiteError('refused', `coordinator refused: ${err.code}: ${err.reason}`, err.code));
    });
    transport.once('welcome', (raw: unknown) => {
      let key: Uint8Array;
      try {
        key = verifyWelcome(raw, state, ctx.coordinatorKey);
      } catch (e) {
        const pe = e as ProtocolError;
        end(new SiteError(pe.code === 'wrong_key' || pe.code === 'bad_signature' ? 'wrong_coordinator' : 'handshake_failed', pe.message));
        return;
      }
      clearTimeout(timer);
      channel = new SecureChannel(sealedPort(transport), new SecureSession(key, 'site'), {
        transfers: ctx.transfers,
        ...(ctx.chunkBytes ? { chunkBytes: ctx.chunkBytes } : {}),
        onReject: (err) => ctx.logger.warn({ code: err.code }, 'rejected envelope from coordinator'),
      });
      const ch = channel;
      ch.onMessage((m) => {
        if (m.type === 'finish') {
          // The coordinator sends finish only after the last round's replies are in, so any work still queued
          // here (a trainer that never returned) is moot: end now rather than behind it.
          finished = m.lastRound;
          ctx.onProgress({ type: 'finished', lastRound: m.lastRound });
          end({ kind: 'finished', lastRound: m.lastRound });
          return;
        }
        queue = queue.then(() => handle(ch, m, ctx)).catch((e) => ctx.logger.error({ err: (e as Error).message }, 'site handler failed'));
      });
      ch.send({ v: PROTOCOL_VERSION, type: 'ready', siteId: ctx.siteId });
      ctx.onProgress({ type: 'connected', attempt: 0 });
    });
    transport.send('hello', state.hello);
  });
}

async function getModel(ch: SecureChannel, ctx: SessionContext, modelId: string, included: boolean): Promise<WeightSet> {
  if (!included) {
    if (ctx.model?.id !== modelId) throw new Error(`model ${modelId} was not sent and is not cached`);
    return cloneWeightSet(ctx.model.weights);
  }
  const weights = decodeWeightSet(await ch.receiveBlob(modelId));
  ctx.model = { id: modelId, weights };
  return cloneWeightSet(weights);
}

function safeSend(ch: SecureChannel, m: SessionMessage): void {
  if (!ch.isClosed) ch.send(m);
}

async function handle(ch: SecureChannel, m: SessionMessage, ctx: SessionContext): Promise<void> {
  switch (m.type) {
    case 'fitIns':
      return handleFit(ch, m, ctx);
    case 'evaluateIns':
      return handleEvaluate(ch, m, ctx);
    case 'secaggIns':
      return handleSecAggInstruction(ch, m, secAggContext(ch, ctx));
    case 'statsIns':
      return handleStatisticsInstruction(ch, m, secAggContext(ch, ctx));
    case 'error':
      ctx.logger.warn({ code: m.error.code, reason: m.error.reason }, 'coordinator reported an error');
      return;
    case 'ready':
    case 'fitRes':
    case 'evaluateRes':
    case 'secaggRes':
    case 'statsRes':
    case 'finish':
    case 'transferStart':
    case 'transferResume':
    case 'chunk':
    case 'chunkAck':
      safeSend(ch, { v: PROTOCOL_VERSION, type: 'error', error: { code: 'bad_request', reason: `a coordinator may not send ${m.type}` } });
      return;
    default: {
      const never: never = m;
      throw new Error(`unhandled ${String(never)}`);
    }
  }
}

function secAggContext(ch: SecureChannel, ctx: SessionContext): SecAggSiteContext {
  return {
    siteId: ctx.siteId,
    identity: ctx.identity,
    trainer: ctx.trainer,
    secagg: ctx.secagg,
    getModel: (modelId, included) => getModel(ch, ctx, modelId, included),
    onMasked: (p) =>
      ctx.onProgress(
        p.purpose === 'fit'
          ? { type: 'fit', round: p.round, numExamples: p.numExamples, metrics: finiteMetrics(p.metrics), updateBytes: p.maskedBytes, resumedFrom: 0, reused: false, secure: true }
          : { type: 'statistics', round: p.round, name: p.name ?? 'unnamed', maskedBytes: p.maskedBytes },
      ),
  };
}

async function handleFit(ch: SecureChannel, m: MessageOf<'fitIns'>, ctx: SessionContext): Promise<void> {
  let global: WeightSet;
  try {
    global = await getModel(ch, ctx, m.modelId, m.modelIncluded);
  } catch (e) {
    if (ch.isClosed) return;
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'fitRes', round: m.round, reply: { ok: false, error: { code: 'model_missing', reason: (e as Error).message.slice(0, 300) } } });
    return;
  }
  const reused = ctx.lastFit !== null && ctx.lastFit.round === m.round && ctx.lastFit.modelId === m.modelId;
  if (!reused) {
    const train = async (): Promise<CachedFit> => {
      const out = await ctx.trainer.fit(global, m.config);
      if (!Number.isInteger(out.numExamples) || out.numExamples < 0) throw new Error(`trainer returned numExamples ${out.numExamples}`);
      return {
        updateId: `update-${ctx.siteId}-r${m.round}-${toHex(nacl.randomBytes(6))}`,
        update: encodeWeightSet(out.weights),
        numExamples: out.numExamples,
        metrics: finiteMetrics(out.metrics),
      };
    };
    ctx.lastFit = { round: m.round, modelId: m.modelId, result: train() };
  }
  const entry = ctx.lastFit as NonNullable<SessionContext['lastFit']>;
  let result: CachedFit;
  try {
    result = await entry.result;
  } catch (e) {
    if (ctx.lastFit === entry) ctx.lastFit = null; // a failed run is not cached: a re-issued request trains again
    ctx.onProgress({ type: 'failed', round: m.round, stage: 'fit', reason: (e as Error).message });
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'fitRes', round: m.round, reply: { ok: false, error: { code: 'trainer_failed', reason: (e as Error).message.slice(0, 300) } } });
    return;
  }
  if (ch.isClosed) return; // the result stays cached; a re-issued request after reconnecting will send it
  const { numExamples, metrics, updateId, update } = result;
  safeSend(ch, { v: PROTOCOL_VERSION, type: 'fitRes', round: m.round, reply: { ok: true, numExamples, metrics, updateId } });
  // Same updateId on a re-send: the coordinator's per-site store answers with the first chunk it is missing.
  const { resumedFrom } = await ch.sendBlob(updateId, update);
  ctx.onProgress({ type: 'fit', round: m.round, numExamples, metrics, updateBytes: update.length, resumedFrom, reused });
}

async function handleEvaluate(ch: SecureChannel, m: MessageOf<'evaluateIns'>, ctx: SessionContext): Promise<void> {
  try {
    const global = await getModel(ch, ctx, m.modelId, m.modelIncluded);
    const out = await ctx.trainer.evaluate(global, m.config);
    if (!Number.isInteger(out.numExamples) || out.numExamples < 0) throw new Error(`trainer returned numExamples ${out.numExamples}`);
    const metrics = finiteMetrics(out.metrics);
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'evaluateRes', round: m.round, reply: { ok: true, numExamples: out.numExamples, metrics } });
    ctx.onProgress({ type: 'evaluate', round: m.round, numExamples: out.numExamples, metrics });
  } catch (e) {
    if (ch.isClosed) return;
    ctx.onProgress({ type: 'failed', round: m.round, stage: 'evaluate', reason: (e as Error).message });
    safeSend(ch, { v: PROTOCOL_VERSION, type: 'evaluateRes', round: m.round, reply: { ok: false, error: { code: 'trainer_failed', reason: (e as Error).message.slice(0, 300) } } });
  }
}
