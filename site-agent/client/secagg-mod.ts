/**
 * The site's secure-aggregation mod (STYLE.md habit 3; Flower's `secaggplus_mod`): `SecAggSiteSession` wrapped
 * around the site's ONE normal fit path. At `setup` the site checks the round's participants against the identity
 * keys it pinned or learned before, validates the config, advertises signed keys and starts its local work in the
 * background — training through `trainOnce` (the same cache and fit mods as a plain fit, so a reconnect or a
 * restarted coordinator does not train twice), or the statistics computed for the session; at
 * `collect-masked-vectors` it waits for that work, packs [n/M * w (aggregated tensors only), n/M, n/M * metrics] (or
 * the statistics; under distributed DP the clipped update plus this site's discrete Gaussian noise share) and sends
 * only the masked vector. Any refusal aborts that run for good; the coordinator hears
 * `secagg_refused`.
 */
import nacl from 'tweetnacl';
import {
  bytesEqual,
  fromBase64,
  PROTOCOL_VERSION,
  type ProtocolError,
  sizeOfShape,
  toHex,
  type MessageOf,
  type ReplyError,
  type SecAggSetupContext,
  type SecureChannel,
  type WeightSet,
} from '../../protocol/index.ts';
import {
  fitContribution,
  instructionFromWire,
  isSecAggError,
  packLayout,
  packVectors,
  rangeVectors,
  scaleByExponents,
  replyToWire,
  sameLayout,
  SecAggError,
  SecAggSiteSession,
  stageOf,
  type FitContributionSpec,
} from '../../protocol/secagg/index.ts';
import {
  PrivacyLedger,
  addStatisticsNoiseShare,
  isNoisedStatistic,
  cryptoNoiseSource,
  ddgEvent,
  distributedDpFromConfig,
  dpFitContribution,
  roundedSensitivity,
  type DistributedDpFitConfig,
  type DistributedDpParams,
} from '../../protocol/privacy/index.ts';
import type { TrainedFit } from './fit-path.ts';
import type { StatisticsAnswer } from './statistics-handler.ts';
import type { FitConfig } from './local-trainer.ts';
import { PeerKeys } from './peer-keys.ts';

/** Sessions and statistics kept at once (older ones are forgotten: a coordinator cannot pile up state). */
const MAX_KEPT = 8;

type Work = { kind: 'fit'; trained: TrainedFit } | { kind: 'statistics'; values: Record<string, Float32Array> };

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

/** What a stage request was answered with: the reply, and the masked vector that follows it (collect stage). */
interface StageAnswer {
  readonly reply: SecAggReplyBody;
  readonly masked?: { id: string; bytes: Uint8Array; progress: Parameters<SecAggSiteContext['onMasked']>[0] };
}

/**
 * The answer to the last stage request of a session, kept so that the same request re-issued on a new connection
 * (the site dropped mid-stage: a missed heartbeat while its engine blocked the event loop) gets the same answer —
 * including while the first is still being computed — instead of a `wrong-stage` refusal. Only a byte-identical
 * instruction is answered from here: a coordinator asking the same stage with different content (e.g. another
 * dropout set at unmask) is refused, so a replay can never reveal anything the first answer did not.
 */
interface LastAnswer {
  readonly stage: string;
  readonly instruction: string;
  readonly answer: Promise<StageAnswer>;
  /** Whether the masked vector was delivered once (the audit callback runs once). */
  announced: boolean;
}

/** Sessions whose last answer is kept (one active session at a time is the norm; masked vectors can be large). */
const MAX_REPLAYABLE = 2;

/** Per-site secure-aggregation state; outlives connections (a run survives nothing else, but peer keys do). */
export class SiteSecAggState {
  readonly sessions = new Map<string, Entry>();
  readonly statistics = new Map<string, { name: string; values: Record<string, Float32Array> }>();
  /** By session id: the last stage answered (secagg replies) and statistics layouts computed (statsIns). */
  readonly lastAnswers = new Map<string, LastAnswer>();
  readonly statisticsAnswers = new Map<string, StatisticsAnswer>();
  /** What this site has spent in distributed-DP rounds, by its own accounting (its audit log shows it). */
  readonly privacy = new PrivacyLedger();

  /** `peers`: keys pinned out of band or learned on first use (optionally persisted, peer-keys.ts). */
  constructor(readonly peers: PeerKeys = new PeerKeys()) {}
}

export interface SecAggSiteContext {
  readonly siteId: string;
  readonly identity: { publicKey: Uint8Array; secretKey: Uint8Array };
  readonly secagg: SiteSecAggState;
  /** The site's one fit path (`trainOnce` with the session's model, cache and fit mods). */
  readonly fit: (round: number, modelId: string, modelIncluded: boolean, config: FitConfig) => Promise<TrainedFit>;
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

export function remember<K, V>(m: Map<K, V>, k: K, v: V, max = MAX_KEPT): void {
  m.delete(k); // a re-set key becomes the newest
  m.set(k, v);
  while (m.size > max) m.delete(m.keys().next().value as K);
}

/**
 * The enrolled identities this site will verify peers against: the coordinator's list, accepted only where it
 * agrees with keys pinned or learned before (and with this site's own key). A changed key is refused; keys seen
 * for the first time are remembered (on disk, when the site keeps a known-peers file) before they are used.
 */
async function trustedEnrolled(ctx: SecAggSiteContext, listed: Record<string, string>): Promise<Map<string, Uint8Array>> {
  const peers = ctx.secagg.peers;
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
      const known = peers.get(id);
      if (known && !bytesEqual(known, key)) {
        throw new SecAggError('bad-signature', `the coordinator presents an identity key for "${id}" that differs from the one pinned or seen before`);
      }
      if (!known && peers.strict) throw new SecAggError('unknown-site', `"${id}" is not among this site's pinned peers`);
    }
    out.set(id, key);
  }
  if (!out.has(ctx.siteId)) throw new SecAggError('unknown-site', 'this site is not among the listed participants');
  await peers.learn(new Map([...out].filter(([id]) => id !== ctx.siteId)));
  return out;
}

function startWork(ctx: SecAggSiteContext, sessionId: string, setup: SecAggSetupContext): Promise<Work> {
  if (setup.purpose === 'statistics') {
    const computedIn = setup.statistics?.computedIn ?? sessionId;
    const cached = ctx.secagg.statistics.get(computedIn);
    if (!cached || !setup.statistics || cached.name !== setup.statistics.name) {
      return Promise.reject(new SecAggError('wrong-stage', `no "${setup.statistics?.name}" statistics were computed for ${computedIn}`));
    }
    return Promise.resolve({ kind: 'statistics', values: cached.values });
  }
  const fit = setup.fit;
  if (!fit) return Promise.reject(new SecAggError('malformed-message', 'fit setup without a fit section'));
  return ctx.fit(setup.round, setup.modelId, setup.modelIncluded, fit.config).then((trained) => ({ kind: 'fit', trained }));
}

/**
 * This site's weighted fit contribution: the aggregated tensors of its update, its example count and metrics — or,
 * under distributed DP, the clipped update with weight 1 and the noise share queued for masking.
 */
function fitVector(entry: Entry, trained: TrainedFit, ledger: PrivacyLedger): { vector: Float32Array; numExamples: number; metrics: Record<string, number> } {
  const fit = entry.setup.fit!;
  const spec: FitContributionSpec = {
    tensors: fit.tensors.map((name) => {
      const shape = trained.shapes.get(name);
      if (!shape) throw new SecAggError('bad-input', `the global model has no tensor "${name}"`);
      return { name, length: sizeOfShape(shape) };
    }),
    metrics: fit.metrics,
    maxExamples: fit.maxExamples,
  };
  const update = new Map<string, Float32Array>();
  for (const t of trained.output.weights) {
    const want = trained.shapes.get(t.name);
    if (want && (want.length !== t.shape.length || want.some((d, i) => d !== t.shape[i]))) {
      throw new SecAggError('bad-input', `trained tensor "${t.name}" has shape [${t.shape}], the global model [${want}]`);
    }
    update.set(t.name, t.data);
  }
  const n = trained.output.numExamples;
  if (!Number.isInteger(n) || n < 0) throw new SecAggError('bad-input', `trainer returned numExamples ${n}`);
  const metrics = trained.output.metrics ?? {};
  const dp = distributedDpFromConfig(fit.config);
  if (dp) return distributedDpVector(entry, spec, trained.global, update, n, metrics, dp, ledger);
  return { vector: fitContribution(spec, update, n, metrics), numExamples: n, metrics: { ...metrics } };
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

/**
 * The statistics vector, refused (never clipped) when a value lies outside the clip range. A range stage sends the
 * one-hot exponent bounds of the values instead; a scaled stage sends each named vector times 2^-exponent
 * (protocol/secagg/statistic-range.ts).
 */
function statisticsVector(entry: Entry, values: Record<string, Float32Array>): Float32Array {
  const st = entry.setup.statistics!;
  const lengths: Record<string, number> = {};
  for (const e of st.entries) lengths[e.name] = e.length;
  let sent = values;
  if (st.range) sent = rangeVectors(values);
  else if (st.exponents) sent = scaleByExponents(values, Object.fromEntries(st.entries.map((e, i) => [e.name, st.exponents![i]])), -1);
  const { vector, layout } = packVectors(sent);
  if (!sameLayout(layout, packLayout(lengths))) throw new SecAggError('bad-input', 'statistics layout differs from the one the round was set up with');
  for (let i = 0; i < vector.length; i++) {
    if (!(Math.abs(vector[i]) <= entry.clip)) {
      // Clipping would silently corrupt a sum of statistics; refusing is the honest outcome.
      throw new SecAggError('bad-input', `a statistic value (${vector[i]}) lies outside the clip range ±${entry.clip}`);
    }
  }
  return vector;
}

/**
 * Distributed DP statistics (protocol/privacy/dp-statistics.ts): queue this site's discrete Gaussian share for the
 * noised entries and account the release in the site's own ledger (assuming every site of the round adds its share).
 * Returns the audit log's metrics for it.
 */
function statisticsNoise(entry: Entry, ledger: PrivacyLedger): Record<string, number> {
  const st = entry.setup.statistics!;
  if (!st.noise || st.range) return {};
  const { siteSigma, scaledSensitivity, delta, label } = st.noise;
  const lengths: Record<string, number> = {};
  for (const e of st.entries) lengths[e.name] = e.length;
  const ranges = packLayout(lengths).entries.filter((e) => isNoisedStatistic(e.name));
  entry.addNoise = (q) => addStatisticsNoiseShare(q, ranges, siteSigma, cryptoNoiseSource());
  const dim = ranges.reduce((a, r) => a + r.length, 0);
  const { l2, l1 } = roundedSensitivity(scaledSensitivity, entry.scaleBits, dim);
  ledger.record(ddgEvent(label, { l2Sensitivity: l2, l1Sensitivity: l1, siteSigma } as DistributedDpParams, entry.sites, dim));
  return { 'dp.epsilon': ledger.spent(delta).epsilon, 'dp.delta': delta, 'dp.siteSigma': siteSigma };
}

type SecAggReplyBody = MessageOf<'secaggRes'>['reply'];

async function setupSession(ctx: SecAggSiteContext, m: MessageOf<'secaggIns'>, ins: Extract<ReturnType<typeof instructionFromWire>, { type: 'secagg/setup' }>): Promise<SecAggReplyBody> {
  const st = ctx.secagg;
  if (st.sessions.has(m.sessionId)) throw new SecAggError('wrong-stage', `setup of ${m.sessionId} received twice`);
  if (!m.setup) throw new SecAggError('malformed-message', 'setup without its context');
  if (ins.config.roundId !== m.sessionId) throw new SecAggError('malformed-message', 'setup config names another session');
  const enrolled = await trustedEnrolled(ctx, m.setup.enrolled);
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
  return { ok: true, message: replyToWire(reply).json };
}

/** Handle one `secaggIns`. Never throws for the session's content: every refusal becomes `{ok:false}` data on the wire. */
export async function handleSecAggInstruction(ch: SecureChannel, m: MessageOf<'secaggIns'>, ctx: SecAggSiteContext): Promise<void> {
  const st = ctx.secagg;
  const instruction = JSON.stringify(m.instruction);
  const last = st.lastAnswers.get(m.sessionId);
  let entry: LastAnswer;
  if (last && last.stage === m.stage) {
    if (last.instruction !== instruction) {
      return sendReply(ch, m, { ok: false, error: { code: 'secagg_refused', reason: `${m.stage} of ${m.sessionId} was already answered for another instruction` } });
    }
    entry = last; // re-issued after a reconnect: the same answer again
    if (m.stage === 'setup' && m.setup) restartWorkCutByDrop(m.sessionId, m.setup, ctx);
  } else {
    entry = { stage: m.stage, instruction, answer: answerStage(m, ctx), announced: false };
    remember(st.lastAnswers, m.sessionId, entry, MAX_REPLAYABLE);
  }
  const { reply, masked } = await entry.answer;
  sendReply(ch, m, reply);
  if (!masked || ch.isClosed) return;
  await ch.sendBlob(masked.id, masked.bytes);
  if (!entry.announced) {
    entry.announced = true;
    ctx.onMasked(masked.progress);
  }
}

/**
 * A setup re-issued on a new connection: local work that failed only because the old connection closed under it (the
 * model download was cut) starts again here, reading the model the coordinator sends again on this connection.
 * Training itself is never run twice (`trainOnce` caches by round and model).
 */
function restartWorkCutByDrop(sessionId: string, setup: SecAggSetupContext, ctx: SecAggSiteContext): void {
  const entry = ctx.secagg.sessions.get(sessionId);
  if (!entry?.work) return;
  entry.work = entry.work.catch((e: unknown) => {
    if ((e as ProtocolError)?.code !== 'closed') throw e;
    return startWork(ctx, sessionId, setup);
  });
  entry.work.catch(() => {}); // awaited at collect
}

function sendReply(ch: SecureChannel, m: MessageOf<'secaggIns'>, reply: SecAggReplyBody): void {
  if (!ch.isClosed) ch.send({ v: PROTOCOL_VERSION, type: 'secaggRes', sessionId: m.sessionId, stage: m.stage, reply });
}

/** The answer to one stage instruction (computed once per stage; never rejects). */
async function answerStage(m: MessageOf<'secaggIns'>, ctx: SecAggSiteContext): Promise<StageAnswer> {
  const refuse = (code: ReplyError['code'], e: unknown): StageAnswer => ({ reply: { ok: false, error: { code, reason: ((e as Error)?.message ?? String(e)).slice(0, 480) } } });
  const st = ctx.secagg;
  try {
    const ins = instructionFromWire(m.instruction);
    if (stageOf(ins) !== m.stage) throw new SecAggError('wrong-stage', `a ${stageOf(ins)} instruction sent as ${m.stage}`);
    if (ins.type === 'secagg/setup') return { reply: await setupSession(ctx, m, ins) };
    const entry = st.sessions.get(m.sessionId);
    if (!entry) throw new SecAggError('wrong-stage', `no secure-aggregation session ${m.sessionId} on this site`);
    let produced: { numExamples: number; metrics: Record<string, number> } | null = null;
    if (ins.type === 'secagg/collect-masked-vectors') {
      let work: Work;
      try {
        work = await entry.work!;
      } catch (e) {
        st.sessions.delete(m.sessionId);
        return refuse(isSecAggError(e) ? 'secagg_refused' : 'trainer_failed', e);
      }
      if (work.kind === 'fit') {
        const v = fitVector(entry, work.trained, st.privacy);
        entry.vector = v.vector;
        produced = v;
      } else {
        entry.vector = statisticsVector(entry, work.values);
        produced = { numExamples: 0, metrics: statisticsNoise(entry, st.privacy) };
      }
    }
    const reply = await entry.session.handle(ins);
    entry.vector = undefined; // the plaintext contribution is not kept once masked
    if (ins.type === 'secagg/unmask') {
      st.sessions.delete(m.sessionId);
      st.statistics.delete(m.sessionId);
    }
    const { json, masked } = replyToWire(reply);
    if (!masked) return { reply: { ok: true, message: json } };
    const maskedId = `masked-${m.sessionId}-${toHex(nacl.randomBytes(4))}`;
    // A scaled statistics round masks twice: the exponent bounds (audited as `<name>:range`), then the values.
    const { round, purpose, statistics } = entry.setup;
    const progress = { round, purpose, ...(statistics ? { name: statistics.range ? `${statistics.name}:range` : statistics.name } : {}), numExamples: produced?.numExamples ?? 0, metrics: produced?.metrics ?? {}, maskedBytes: masked.length };
    return { reply: { ok: true, message: json, maskedId }, masked: { id: maskedId, bytes: masked, progress } };
  } catch (e) {
    return refuse(isSecAggError(e) ? 'secagg_refused' : 'bad_request', e);
  }
}
