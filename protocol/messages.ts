/**
 * Runtime schemas of every message, from which the TypeScript types are inferred (STYLE.md habit 1).
 * Two families: handshake messages travel in clear (they carry only public keys and signatures);
 * session messages travel only inside sealed envelopes. Every message has `v` and a string `type`.
 */
import { z } from 'zod';
import { SITE_ID_RE } from './enrollment.ts';
import { RANGE_MAX_EXP, RANGE_MIN_EXP } from './secagg/statistic-range.ts';

export const PROTOCOL_VERSION = 1 as const;
const v = z.literal(PROTOCOL_VERSION);
const b64 = z.string().max(200);
const siteId = z.string().regex(SITE_ID_RE);
const round = z.number().int().min(0).max(1_000_000);
const transferId = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/);
const metrics = z.record(z.string().max(64), z.number()).refine((m) => Object.keys(m).length <= 64, 'too many metrics');

// ---- replies as data (STYLE.md habit 5) -------------------------------------------------------

/** Closed set of error codes a reply may carry on the wire. */
export const REPLY_ERROR_CODES = [
  'bad_request',
  'not_enrolled',
  'wrong_key',
  'trainer_failed',
  'model_missing',
  'shape_mismatch',
  'timeout',
  'round_closed',
  'shutting_down',
  'internal',
  /** A secure-aggregation stage was refused by the site (reason starts with `[secagg:<SecAggErrorCode>]`). */
  'secagg_refused',
] as const;
export type ReplyErrorCode = (typeof REPLY_ERROR_CODES)[number];
export const replyErrorSchema = z.object({ code: z.enum(REPLY_ERROR_CODES), reason: z.string().max(500) });
export type ReplyError = z.infer<typeof replyErrorSchema>;

/** `{ok:true, ...data} | {ok:false, error}` */
export type Reply<T> = ({ ok: true } & T) | { ok: false; error: ReplyError };

// ---- configs ----------------------------------------------------------------------------------

const extra = z.union([z.number(), z.string().max(200), z.boolean()]);

/** What a site is asked to do in a fit round. Extendable: strategies add their own keys. */
export const fitConfigSchema = z
  .object({
    round,
    localEpochs: z.number().int().min(0).max(10_000),
    lr: z.number().positive().max(10),
    /** FedProx proximal term weight (Li et al., MLSys 2020, eq. 2); absent or 0 means plain FedAvg. */
    proximalMu: z.number().min(0).max(1e6).optional(),
  })
  .catchall(extra);
export type FitConfig = z.infer<typeof fitConfigSchema>;

export const evalConfigSchema = z.object({ round }).catchall(extra);
export type EvalConfig = z.infer<typeof evalConfigSchema>;

// ---- handshake (clear) ------------------------------------------------------------------------

export const helloSchema = z.object({
  v,
  type: z.literal('hello'),
  siteId,
  identityKey: b64,
  ephemeralKey: b64,
  nonce: b64,
  /** Proof of an enrollment token (HMAC keyed by the token over the handshake keys); the token itself never travels. */
  tokenProof: b64.optional(),
  signature: b64.optional(), // optional in the schema so an unsigned hello gets the precise 'unsigned' error
});
export type Hello = z.infer<typeof helloSchema>;

export const welcomeSchema = z.object({
  v,
  type: z.literal('welcome'),
  coordinatorKey: b64,
  ephemeralKey: b64,
  nonce: b64,
  signature: b64.optional(),
});
export type Welcome = z.infer<typeof welcomeSchema>;

export const refusedSchema = z.object({ v, type: z.literal('refused'), error: replyErrorSchema });
export type Refused = z.infer<typeof refusedSchema>;

// ---- secure aggregation (sealed) --------------------------------------------------------------

/** Identifies one secure-aggregation run (a fit round or a statistics round); also its SecAgg roundId. */
const secaggSessionId = z.string().min(1).max(128).regex(/^[A-Za-z0-9._:-]+$/);
export const SECAGG_WIRE_STAGES = ['setup', 'share-keys', 'collect-masked-vectors', 'consistency-check', 'unmask'] as const;
const secaggStage = z.enum(SECAGG_WIRE_STAGES);
/**
 * A SecAgg stage message as JSON (protocol/secagg/wire-json.ts: bytes as `{$b64}`); the receiver re-validates it
 * with the secagg schemas (`instructionFromWire` / `replyFromWire`) before use.
 */
const secaggJson = z.record(z.string().max(64), z.unknown());
const packEntry = z.object({ name: z.string().min(1).max(256), length: z.number().int().min(0).max(1 << 28) });
const statsConfig = z.record(z.string().max(64), extra).refine((m) => Object.keys(m).length <= 64, 'too many config keys');
/** Sent with the setup stage only: what the masked vector holds and whom to trust. */
export const secaggSetupSchema = z.object({
  purpose: z.enum(['fit', 'statistics']),
  round,
  /**
   * Enrolled Ed25519 identity keys (base64) of this run's participants: the site verifies every peer's signed round
   * keys against them (and against keys it pinned or saw before; see SECURITY.md).
   */
  enrolled: z.record(siteId, b64).refine((m) => Object.keys(m).length <= 1000, 'too many participants'),
  modelId: transferId,
  modelIncluded: z.boolean(),
  fit: z
    .object({
      config: fitConfigSchema,
      /** Aggregated tensors (names of the global model, in the masked vector); the rest never leave the site. */
      tensors: z.array(z.string().min(1).max(256)).max(10_000),
      metrics: z.array(z.string().min(1).max(64)).max(32),
      maxExamples: z.number().positive().max(1e12),
    })
    .optional(),
  statistics: z
    .object({
      name: z.string().min(1).max(128),
      entries: z.array(packEntry).max(10_000),
      /** The statsIns session whose computed statistics this masked run sums (default: this session). */
      computedIn: secaggSessionId.optional(),
      /** Stage 1 of a scaled statistics round: sum one-hot exponent bounds instead of values (secagg/statistic-range.ts). */
      range: z.literal(true).optional(),
      /** Stage 2: entry i is multiplied by 2^-exponents[i] before masking (aligned with `entries`). */
      exponents: z.array(z.number().int().min(RANGE_MIN_EXP).max(RANGE_MAX_EXP)).max(10_000).optional(),
      /**
       * Distributed DP statistics (protocol/privacy/dp-statistics.ts): every site adds N_Z(0, siteSigma^2) to each
       * quantized noised entry before masking; `scaledSensitivity` (one privacy unit's L2 effect on the scaled sum)
       * and `delta` let the site account its own release.
       */
      noise: z.object({ siteSigma: z.number().positive().max(1e12), scaledSensitivity: z.number().positive().max(1e6), delta: z.number().gt(0).lt(1), label: z.string().min(1).max(128) }).strict().optional(),
    })
    .refine((st) => st.exponents === undefined || st.exponents.length === st.entries.length, 'one exponent per entry')
    .refine((st) => !(st.range && st.exponents), 'a range stage has no exponents')
    .optional(),
});
export type SecAggSetupContext = z.infer<typeof secaggSetupSchema>;

// ---- session messages (sealed) ----------------------------------------------------------------

const fitOk = z.object({
  ok: z.literal(true),
  numExamples: z.number().int().min(0),
  metrics,
  /** Transfer carrying the encoded updated WeightSet. */
  updateId: transferId,
});
const fail = z.object({ ok: z.literal(false), error: replyErrorSchema });
const evalOk = z.object({ ok: z.literal(true), numExamples: z.number().int().min(0), metrics });

export const sessionMessageSchema = z.discriminatedUnion('type', [
  /** Site -> coordinator, first sealed message: proves the site holds the session key. */
  z.object({ v, type: z.literal('ready'), siteId }),
  /** Coordinator -> site: train on `modelId` (sent as a transfer of that id when `modelIncluded`). */
  z.object({ v, type: z.literal('fitIns'), round, config: fitConfigSchema, modelId: transferId, modelIncluded: z.boolean() }),
  z.object({ v, type: z.literal('fitRes'), round, reply: z.discriminatedUnion('ok', [fitOk, fail]) }),
  z.object({ v, type: z.literal('evaluateIns'), round, config: evalConfigSchema, modelId: transferId, modelIncluded: z.boolean() }),
  z.object({ v, type: z.literal('evaluateRes'), round, reply: z.discriminatedUnion('ok', [evalOk, fail]) }),
  /** Coordinator -> site: one secure-aggregation stage instruction (setup carries `setup`, the model follows as a transfer). */
  z.object({ v, type: z.literal('secaggIns'), sessionId: secaggSessionId, stage: secaggStage, instruction: secaggJson, setup: secaggSetupSchema.optional() }),
  /** Site -> coordinator: the stage reply; a masked vector travels as transfer `maskedId`, never inline. */
  z.object({
    v,
    type: z.literal('secaggRes'),
    sessionId: secaggSessionId,
    stage: secaggStage,
    reply: z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), message: secaggJson, maskedId: transferId.optional() }), fail]),
  }),
  /** Coordinator -> site: compute the named statistics on model `modelId`; the site answers with their layout only. */
  z.object({ v, type: z.literal('statsIns'), sessionId: secaggSessionId, round, name: z.string().min(1).max(128), config: statsConfig, modelId: transferId, modelIncluded: z.boolean() }),
  z.object({
    v,
    type: z.literal('statsRes'),
    sessionId: secaggSessionId,
    reply: z.discriminatedUnion('ok', [z.object({ ok: z.literal(true), entries: z.array(packEntry).max(10_000) }), fail]),
  }),
  /** Announces a chunked transfer; the digest is SHA-512 (base64) of the whole blob. */
  z.object({
    v,
    type: z.literal('transferStart'),
    transferId,
    totalBytes: z.number().int().min(0),
    chunkBytes: z.number().int().min(1),
    chunkCount: z.number().int().min(0),
    digest: b64,
  }),
  /** Receiver -> sender: continue from this chunk index (0 for a new transfer; more when resuming). */
  z.object({ v, type: z.literal('transferResume'), transferId, nextIndex: z.number().int().min(0) }),
  z.object({ v, type: z.literal('chunk'), transferId, index: z.number().int().min(0), data: z.custom<Uint8Array>((x) => x instanceof Uint8Array, 'binary chunk data') }),
  z.object({ v, type: z.literal('chunkAck'), transferId, nextIndex: z.number().int().min(0) }),
  /** Coordinator -> site: training is over; the site may exit. */
  z.object({ v, type: z.literal('finish'), reason: z.string().max(200), lastRound: round }),
  /** Either direction: a message was rejected (errors as data). */
  z.object({ v, type: z.literal('error'), error: replyErrorSchema, /** set when a transfer was refused: the sender stops */ transferId: transferId.optional() }),
]);
export type SessionMessage = z.infer<typeof sessionMessageSchema>;
export type SessionMessageType = SessionMessage['type'];
export type MessageOf<T extends SessionMessageType> = Extract<SessionMessage, { type: T }>;
