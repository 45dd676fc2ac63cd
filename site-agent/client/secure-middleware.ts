/**
 * The site's secure-aggregation middleware (STYLE.md habit 3): `SecAggSiteSession` wrapped around the
 * LocalTrainer. At `setup` the site checks the round's participants against identity keys it pinned or saw
 * before, validates the config, advertises signed keys and starts training in the background; at
 * `collect-masked-vectors` it waits for training, packs [n/M * w (aggregated tensors only), n/M, n/M * metrics]
 * and sends only the masked vector (a chunked transfer). Statistics rounds do the same with
 * `LocalTrainer.statistics`. Any refusal aborts that run for good; the coordinator hears `secagg_refused`.
 */
import nacl from 'tweetnacl';
import { bytesEqual, fromBase64, toHex } from '../../protocol/bytes.ts';
import { PROTOCOL_VERSION, type MessageOf, type ReplyError, type SecAggSetupContext } from '../../protocol/messages.ts';
import { sizeOfShape, type WeightSet } from '../../protocol/named-tensor.ts';
import { SecAggError, isSecAggError } from '../../protocol/secagg/errors.ts';
import { fitContribution, type FitContributionSpec } from '../../protocol/secagg/fit-contribution.ts';
import { stageOf } from '../../protocol/secagg/messages.ts';
import { packLayout, packVectors, sameLayout } from '../../protocol/secagg/pack.ts';
import { SecAggSiteSession } from '../../protocol/secagg/site-session.ts';
import {
  PrivacyLedger,
  cryptoNoiseSource,
  ddgEvent,
  distributedDpFromConfig,
  dpFitContribution,
  roundedSensitivity,
  type DistributedDpFitConfig,
  type DistributedDpParams,
} from '../../protocol/privacy/index.ts';
import { instructionFromWire, replyToWire } from '../../protocol/secagg/wire-json.ts';
import type { SecureChannel } from '../../protocol/secure-channel.ts';
import type { FitOutput, LocalTrainer } from './local-trainer.ts';

/** Sessions and statistics kept at once (older ones are forgotten: a coordinator cannot pile up state). */
const MAX_KEPT = 8;

type Work = { kind: 'fit'; out: FitOutput; shapes: Map<string, number[]>; global: WeightSet } | { kind: 'statistics'; values: Record<string, Float32Array> };

interface Entry {
  readonly session: SecAggSiteSession;
  readonly setup: SecAggSetupContext;
  clip: number;
  /** The round's quantization step and number of sites (for this site's own DP accounting). */
  scaleBits: number;
  sites: number;
  work: Promise<Work> | null;
  vector: Float32Array | undefined;
  /** Distributed DP: this site's noise share, added to the quantized vector before masking. */
  addNoise?: (quantized: Uint32Array) => void;
}

/** Per-site secure-aggregation state; outlives connections (a run survives nothing else, but pins do). */
export class SiteSecAggState {
  readonly sessions = new Map<string, Entry>();
  readonly statistics = new Map<string, { name: string; values: Record<string, Float32Array> }>();
  /** What this site has spent in distributed-DP rounds, by its own accounting (its audit log shows it). */
  readonly privacy = new PrivacyLedger();
  /** Peer identity keys: pinned out of band (strict) or remembered the first time a coordinator presented them. */
  readonly knownPeers = new Map<string, Uint8Array>();
  readonly strict: boolean;

  constructor(pinned?: ReadonlyMap<string, Uint8Array>) {
    this.strict = pinned !== undefined;
    for (const [id, k] of pinned ?? []) this.knownPeers.set(id, new Uint8Array(k));
  }
}

export interface SecAggSiteContext {
  readonly siteId: string;
  readonly identity: { publicKey: Uint8Array; secretKey: Uint8Array };
  readonly trainer: LocalTrainer;
  readonly secagg: SiteSecAggState;
  readonly getModel: (modelId: string, included: boolean) => Promise<WeightSet>;
  readonly onMasked: (p: {
    round: number;
    purpose: 'fit' | 'statistics';
    /** The statistic's name (purpose 'statistics'), for the site's audit log. */
    name?: string;
    numExamples: number;
    metrics: Record<string, number>;
    maskedBytes: number;
  }) => void;
}

function remember<K, V>(m: Map<K, V>, k: K, v: V): void {
  m.set(k, v);
  while (m.size > MAX_KEPT) m.delete(m.keys().next().value as K);
}

/**
 * The enrolled identities this site will verify peers against: the coordinator's list, accepted only where it
 * agrees with keys pinned or seen before (and with this site's own key). A changed key is refused.
 */
function trustedEnrolled(ctx: SecAggSiteContext, listed: Record<string, string>): Map<string, Uint8Array> {
  const st = ctx.secagg;
  const out = new Map<string, Uint8Array>();
  for (const [id, b64] of Object.entries(listed)) {
    let key: Uint8Array;
    try {
      key = fromBase64(b64, 32);
    } catch {
      throw new SecAggError('malformed-message', `enrolled key of "${id}" is not 32 bytes of base64`);
    }
    if (id === ctx.siteId) {
      if (!bytesEqual(key, ctx.identity.publicKey)) throw new SecAggError('bad-signature', `the coordinator lists another identity key for this site ("${id}")`);
    } else {
      const known = st.knownPeers.get(id);
      if (known && !bytesEqual(known, key)) {
        throw new SecAggError('bad-signature', `the coordinator presents an identity key for "${id}" that differs from the one pinned or seen before`);
      }
      if (!known && st.strict) throw new SecAggError('unknown-site', `"${id}" is not among this site's pinned peers`);
    }
    out.set(id, key);
  }
  if (!out.has(ctx.siteId)) throw new SecAggError('unknown-site', 'this site is not among the listed participants');
  for (const [id, k] of out) if (!st.knownPeers.has(id)) st.knownPeers.set(id, k);
  return out;
}

function startWork(ctx: SecAggSiteContext, sessionId: string, setup: SecAggSetupContext): Promise<Work> {
  if (setup.purpose === 'statistics') {
    const cached = ctx.secagg.statistics.get(sessionId);
    if (!cached || !setup.statistics || cached.name !== setup.statistics.name) {
      return Promise.reject(new SecAggError('wrong-stage', `no "${setup.statistics?.name}" statistics were computed for ${sessionId}`));
    }
    return Promise.resolve({ kind: 'statistics', values: cached.values });
  }
  const fit = setup.fit;
  if (!fit) return Promise.reject(new SecAggError('malformed-message', 'fit setup without a fit section'));
  return (async (): Promise<Work> => {
    const global = await ctx.getModel(setup.modelId, setup.modelIncluded);
    const shapes = new Map(global.map((t) => [t.name, [...t.shape]]));
    const out = await ctx.trainer.fit(global, fit.config);
    return { kind: 'fit', out, shapes, global };
  })();
}

/** The float vector this site masks: its weighted contribution (fit) or its statistics (statistics). */
function contributionVector(entry: Entry, work: Work, privacy: PrivacyLedger): { vector: Float32Array; numExamples: number; metrics: Record<string, number> } {
  if (work.kind === 'fit') {
    const fit = entry.setup.fit!;
    const spec: FitContributionSpec = {
      tensors: fit.tensors.map((name) => {
        const shape = work.shapes.get(name);
        if (!shape) throw new SecAggError('bad-input', `the global model has no tensor "${name}"`);
        return { name, length: sizeOfShape(shape) };
      }),
      metrics: fit.metrics,
      maxExamples: fit.maxExamples,
    };
    const update = new Map<string, Float32Array>();
    for (const t of work.out.weights) {
      const want = work.shapes.get(t.name);
      if (want && (want.length !== t.shape.length || want.some((d, i) => d !== t.shape[i]))) {
        throw new SecAggError('bad-input', `trained tensor "${t.name}" has shape [${t.shape}], the global model [${want}]`);
      }
      update.set(t.name, t.data);
    }
    const n = work.out.numExamples;
    if (!Number.isInteger(n) || n < 0) throw new SecAggError('bad-input', `trainer returned numExamples ${n}`);
    const dp = distributedDpFromConfig(fit.config);
    if (dp) return distributedDpVector(entry, spec, work.global, update, n, work.out.metrics ?? {}, dp, privacy);
    return { vector: fitContribution(spec, update, n, work.out.metrics ?? {}), numExamples: n, metrics: { ...work.out.metrics } };
  }
  const want = entry.setup.statistics!.entries;
  const lengths: Record<string, number> = {};
  for (const e of want) lengths[e.name] = e.length;
  const { vector, layout } = packVectors(work.values);
  if (!sameLayout(layout, packLayout(lengths))) throw new SecAggError('bad-input', 'statistics layout differs from the one the round was set up with');
  for (let i = 0; i < vector.length; i++) {
    if (!(Math.abs(vector[i]) <= entry.clip)) {
      // Clipping would silently corrupt a sum of statistics; refusing is the honest outcome.
      throw new SecAggError('bad-input', `a statistic value (${vector[i]}) lies outside the clip range ±${entry.clip}`);
    }
  }
  return { vector, numExamples: 0, metrics: {} };
}

/**
 * Distributed DP-FedAvg (protocol/privacy/dp-fit-contribution.ts): the clipped update with weight 1, the noise share
 * queued for masking, and this site's own accounting of the round (assuming every site of the round adds its share).
 */
function distributedDpVector(
  entry: Entry,
  spec: FitContributionSpec,
  global: WeightSet,
  update: Map<string, Float32Array>,
  numExamples: number,
  metrics: Record<string, number>,
  dp: DistributedDpFitConfig,
  ledger: PrivacyLedger,
): { vector: Float32Array; numExamples: number; metrics: Record<string, number> } {
  const c = dpFitContribution(spec, new Map(global.map((t) => [t.name, t.data])), update, metrics, dp, cryptoNoiseSource());
  entry.addNoise = c.addNoise;
  const dim = spec.tensors.reduce((s, t) => s + t.length, 0);
  const { l2, l1 } = roundedSensitivity(dp.clip / spec.maxExamples, entry.scaleBits, dim);
  ledger.record(ddgEvent('dp-fedavg', { l2Sensitivity: l2, l1Sensitivity: l1, siteSigma: dp.siteSigma } as DistributedDpParams, entry.sites, dim));
  const privacy = { 'dp.epsilon': ledger.spent(dp.delta).epsilon, 'dp.delta': dp.delta, 'dp.clip': dp.clip, 'dp.siteSigma': dp.siteSigma, 'dp.updateNorm': c.updateNorm };
  return { vector: c.vector, numExamples, metrics: { ...metrics, ...privacy } };
}

type SecAggReplyBody = MessageOf<'secaggRes'>['reply'];

/** Handle one `secaggIns`. Never throws: every refusal becomes `{ok:false}` data on the wire. */
export async function handleSecAggInstruction(ch: SecureChannel, m: MessageOf<'secaggIns'>, ctx: SecAggSiteContext): Promise<void> {
  const send = (reply: SecAggReplyBody): void => {
    if (!ch.isClosed) ch.send({ v: PROTOCOL_VERSION, type: 'secaggRes', sessionId: m.sessionId, stage: m.stage, reply });
  };
  const refuse = (code: ReplyError['code'], e: unknown): void => send({ ok: false, error: { code, reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } });
  const st = ctx.secagg;
  try {
    const ins = instructionFromWire(m.instruction);
    if (stageOf(ins) !== m.stage) throw new SecAggError('wrong-stage', `a ${stageOf(ins)} instruction sent as ${m.stage}`);
    if (ins.type === 'secagg/setup') {
      if (st.sessions.has(m.sessionId)) throw new SecAggError('wrong-stage', `setup of ${m.sessionId} received twice`);
      if (!m.setup) throw new SecAggError('malformed-message', 'setup without its context');
      if (ins.config.roundId !== m.sessionId) throw new SecAggError('malformed-message', 'setup config names another session');
      const enrolled = trustedEnrolled(ctx, m.setup.enrolled);
      const entry: Entry = {
        setup: m.setup,
        clip: ins.config.quant.clip,
        scaleBits: ins.config.quant.scaleBits,
        sites: ins.config.siteIds.length,
        work: null,
        vector: undefined,
        session: new SecAggSiteSession({ siteId: ctx.siteId, identity: ctx.identity, enrolled, input: () => entry.vector as Float32Array, addNoise: (q) => entry.addNoise?.(q) }),
      };
      remember(st.sessions, m.sessionId, entry);
      const reply = await entry.session.handle(ins);
      // Only a config this site accepted starts local work.
      entry.work = startWork(ctx, m.sessionId, m.setup);
      entry.work.catch(() => {}); // awaited at collect; a failure there is reported then
      send({ ok: true, message: replyToWire(reply).json });
      return;
    }
    const entry = st.sessions.get(m.sessionId);
    if (!entry) throw new SecAggError('wrong-stage', `no secure-aggregation session ${m.sessionId} on this site`);
    let produced: ReturnType<typeof contributionVector> | null = null;
    if (ins.type === 'secagg/collect-masked-vectors') {
      let work: Work;
      try {
        work = await entry.work!;
      } catch (e) {
        st.sessions.delete(m.sessionId);
        refuse(isSecAggError(e) ? 'secagg_refused' : 'trainer_failed', e);
        return;
      }
      produced = contributionVector(entry, work, st.privacy);
      entry.vector = produced.vector;
    }
    const reply = await entry.session.handle(ins);
    entry.vector = undefined; // the plaintext contribution is not kept once masked
    const { json, masked } = replyToWire(reply);
    if (masked) {
      const maskedId = `masked-${m.sessionId}-${toHex(nacl.randomBytes(4))}`;
      send({ ok: true, message: json, maskedId });
      await ch.sendBlob(maskedId, masked);
      ctx.onMasked({
        round: entry.setup.round,
        purpose: entry.setup.purpose,
        ...(entry.setup.statistics ? { name: entry.setup.statistics.name } : {}),
        numExamples: produced?.numExamples ?? 0,
        metrics: produced?.metrics ?? {},
        maskedBytes: masked.length,
      });
    } else {
      send({ ok: true, message: json });
    }
    if (ins.type === 'secagg/unmask') {
      st.sessions.delete(m.sessionId);
      st.statistics.delete(m.sessionId);
    }
  } catch (e) {
    refuse(isSecAggError(e) ? 'secagg_refused' : 'bad_request', e);
  }
}

/** Handle one `statsIns`: compute the statistics, keep them for the masked run, answer with their layout only. */
export async function handleStatisticsInstruction(ch: SecureChannel, m: MessageOf<'statsIns'>, ctx: SecAggSiteContext): Promise<void> {
  const send = (reply: MessageOf<'statsRes'>['reply']): void => {
    if (!ch.isClosed) ch.send({ v: PROTOCOL_VERSION, type: 'statsRes', sessionId: m.sessionId, reply });
  };
  // The hook is optional: a trainer without it declines the request as data on the wire, like any unsupported request.
  const statistics = ctx.trainer.statistics;
  if (!statistics) {
    send({ ok: false, error: { code: 'bad_request', reason: 'this site computes no federated statistics (its LocalTrainer has no statistics hook)' } });
    return;
  }
  try {
    const global = await ctx.getModel(m.modelId, m.modelIncluded);
    const values = await statistics.call(ctx.trainer, global, { name: m.name, config: m.config });
    if (values === null || typeof values !== 'object') throw new Error('statistics must be a record of Float32Array');
    const entries = Object.keys(values)
      .sort()
      .map((name) => {
        const v = values[name];
        if (!(v instanceof Float32Array)) throw new Error(`statistic "${name}" is not a Float32Array`);
        if (name.length < 1 || name.length > 256) throw new Error('statistic names are 1-256 characters');
        return { name, length: v.length };
      });
    if (entries.length === 0 || entries.length > 10_000) throw new Error(`statistics must have 1-10000 entries, got ${entries.length}`);
    remember(ctx.secagg.statistics, m.sessionId, { name: m.name, values });
    send({ ok: true, entries });
  } catch (e) {
    send({ ok: false, error: { code: 'trainer_failed', reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } });
  }
}
