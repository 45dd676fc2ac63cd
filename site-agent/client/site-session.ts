/**
 * One connection of a site to the coordinator: handshake over a Transport, then serve fit/evaluate
 * instructions in order until the coordinator says `finish` or the connection drops.
 */
import { cloneWeightSet, createHello, decodeWeightSet, type Identity, type MessageOf, PROTOCOL_VERSION, ProtocolError, refusedSchema, type ReplyError, sealedPort, SecureChannel, SecureSession, type SessionMessage, type SiteTransport, type TransferStore, verifyWelcome, type WeightSet } from '../../protocol/index.ts';
import type { Logger } from '../../protocol/common/index.ts';
import { finiteMetrics, trainOnce, type FitCacheEntry, type FitHandler } from './fit-path.ts';
import type { LocalTrainer } from './local-trainer.ts';
import { handleEvaluate, handleFit } from './requests.ts';
import { handleSecAggInstruction, type SecAggSiteContext, type SiteSecAggState } from './secagg-mod.ts';
import { handleStatisticsInstruction } from './statistics-handler.ts';

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
  /** The trainer wrapped in the site's fit mods: the one fit path (fit-path.ts). */
  fit: FitHandler;
  /**
   * Last fit (in progress or done), kept so a request re-issued after a reconnect is answered without training
   * again — including while the first training run is still going.
   */
  lastFit: FitCacheEntry | null;
  /** Secure-aggregation sessions, computed statistics and peer keys (outlive connections). */
  secagg: SiteSecAggState;
}

export type SessionOutcome = { kind: 'finished'; lastRound: number } | { kind: 'disconnected'; handshaken: boolean };

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
        onReject: (err) => ctx.logger.warn({ code: err.code, err: err.message }, 'rejected envelope from coordinator'),
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
        queue = queue.then(() => handle(ch, m, ctx)).catch((e) => ctx.logger.error({ code: 'handler_failed', request: m.type, err: (e as Error).message }, 'site handler failed'));
      });
      ch.send({ v: PROTOCOL_VERSION, type: 'ready', siteId: ctx.siteId });
      ctx.onProgress({ type: 'connected', attempt: 0 });
    });
    transport.send('hello', state.hello);
  });
}

/** The model `modelId`: received on this channel when the coordinator sends it, else the one cached across connections. */
export async function getModel(ch: SecureChannel, ctx: SessionContext, modelId: string, included: boolean): Promise<WeightSet> {
  if (!included) {
    if (ctx.model?.id !== modelId) throw new Error(`model ${modelId} was not sent and is not cached`);
    return cloneWeightSet(ctx.model.weights);
  }
  const weights = decodeWeightSet(await ch.receiveBlob(modelId));
  ctx.model = { id: modelId, weights };
  return cloneWeightSet(weights);
}

export function safeSend(ch: SecureChannel, m: SessionMessage): void {
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
      return handleStatisticsInstruction(ch, m, { secagg: ctx.secagg, statistics: ctx.trainer.statistics?.bind(ctx.trainer), getModel: (id, inc) => getModel(ch, ctx, id, inc) });
    case 'error':
      ctx.logger.warn({ code: 'coordinator_reported_error', coordinatorCode: m.error.code, reason: m.error.reason }, 'coordinator reported an error');
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
    secagg: ctx.secagg,
    fit: async (round, modelId, modelIncluded, config) => (await trainOnce(ctx, round, modelId, await getModel(ch, ctx, modelId, modelIncluded), config)).trained,
    onMasked: (p) =>
      ctx.onProgress(
        p.purpose === 'fit'
          ? { type: 'fit', round: p.round, numExamples: p.numExamples, metrics: finiteMetrics(p.metrics), updateBytes: p.maskedBytes, resumedFrom: 0, reused: false, secure: true }
          : { type: 'statistics', round: p.round, name: p.name ?? 'unnamed', maskedBytes: p.maskedBytes },
      ),
  };
}
