/**
 * Secure aggregation (SecAgg+ with signed keys and a consistency check): the coordinator learns only the sum.
 * Wired into real rounds by coordinator/workflows/secagg-session.ts (+ secure-fit.ts, statistics.ts) and
 * site-agent/client/secagg-mod.ts; on the wire via `secaggIns/secaggRes` (wire-json.ts, PROTOCOL.md).
 *
 * Wiring into a real round (see run-round.ts for the in-memory reference):
 * ```ts
 * // coordinator
 * const cfg = makeSecAggConfig({ roundId, siteIds, vectorLength: layout.totalLength, quant: { clip: 1, scaleBits: 24 } });
 * const wf = new SecAggServerWorkflow(cfg, enrolledIdentities);
 * let outbox = new Map(siteIds.map((id) => [id, wf.setupInstruction()]));
 * for (const stage of SECAGG_STAGES) {
 *   // send outbox.get(id) to each site; for each reply before the stage deadline: wf.receive(reply)
 *   outbox = wf.closeStage(); // throws SecAggError('below-threshold') and aborts when too few replied
 * }
 * const { sum, included } = await wf.finish();
 * // site
 * const session = new SecAggSiteSession({ siteId, identity, enrolled, input: () => packVectors(named).vector });
 * const reply = await session.handle(instruction); // SecAggError on refusal; the session then stays aborted
 * ```
 */
export { SecAggError, isSecAggError, type SecAggErrorCode } from './errors.ts';
export {
  quantize,
  dequantizeSum,
  checkQuantConfig,
  quantLevel,
  maxSafeScaleBits,
  quantizationErrorBound,
  type QuantConfig,
} from './quantize.ts';
export { keystreamWords, applyKeystream, applyKeystreams, hsalsa20Bytes, type MaskTerm } from './keystream.ts';
export { pairwiseSeed, pairwiseSign, PAIRWISE_MASK_NONCE, SELF_MASK_NONCE, GRAPH_NONCE } from './kdf.ts';
export {
  generateRoundKeyPairs,
  signRoundKeys,
  verifyRoundKeys,
  roundKeysMessage,
  type RoundKeyPairs,
  type SignedRoundKeys,
  type EnrolledIdentities,
} from './round-keys.ts';
export { splitSecret, combineShares, sealShareBundle, openShareBundle, type ShareBundle } from './share-box.ts';
export {
  survivorsMessage,
  signSurvivors,
  verifySurvivorSignatures,
  type SurvivorSignature,
} from './consistency.ts';
export { x25519, boxBefore, ed25519Verify } from './curves.ts';
export { neighbourGraph, defaultDegree } from './neighbours.ts';
export {
  makeSecAggConfig,
  validateSecAggConfig,
  defaultThreshold,
  type SecAggConfig,
  type SecAggConfigInput,
} from './config.ts';
export { weightedContribution, weightedMeanFromSums, EXAMPLE_COUNT_KEY } from './weighted-mean.ts';
export {
  METRIC_PREFIX,
  METRIC_WEIGHT_PREFIX,
  fitContributionLayout,
  fitContribution,
  fitAggregateFromSum,
  type FitContributionSpec,
  type FitAggregate,
} from './fit-contribution.ts';
export {
  instructionToWire,
  instructionFromWire,
  replyToWire,
  replyFromWire,
  maskedVectorBytes,
  maskedVectorFromBytes,
} from './wire-json.ts';
export { packVectors, unpackVectors, packLayout, sameLayout, type PackLayout, type PackEntry } from './pack.ts';
export {
  RANGE_MIN_EXP,
  RANGE_MAX_EXP,
  RANGE_BUCKETS,
  exponentBound,
  rangeVectors,
  exponentsFromRangeSums,
  checkExponent,
  scaleByExponents,
} from './statistic-range.ts';
export {
  SECAGG_VERSION,
  SECAGG_STAGES,
  stageOf,
  messageBytes,
  type SecAggStage,
  type SetupIns,
  type AdvertiseKeysRes,
  type ShareKeysIns,
  type EncryptedShare,
  type EncryptedSharesRes,
  type RelayedShare,
  type CollectIns,
  type MaskedVectorRes,
  type ConsistencyCheckIns,
  type SurvivorsSignatureRes,
  type UnmaskIns,
  type RevealedShare,
  type UnmaskSharesRes,
  type SecAggInstruction,
  type SecAggReply,
} from './messages.ts';
export { parseSecAggInstruction, parseSecAggReply, secAggInstructionSchema, secAggReplySchema } from './schemas.ts';
export {
  SecAggSiteSession,
  type SiteSessionOptions,
  type SiteSessionState,
  type RevealedKind,
} from './site-session.ts';
export { SecAggServerWorkflow, type SecAggResult, type ServerState } from './server-workflow.ts';
export {
  runSecAggRound,
  makeSimulatedSites,
  type SimulatedSite,
  type RunSecAggOptions,
  type SecAggRoundReport,
} from './run-round.ts';
export { u32Folder, type U32Folder } from './u32-simd.ts';
