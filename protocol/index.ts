/** protocol/: the wire contract shared by coordinator and site agent. (protocol/secagg has its own barrel.) */
export { type NamedTensor, type WeightSet, sizeOfShape, cloneWeightSet } from './named-tensor.ts';
export { ProtocolError, isProtocolError, PROTOCOL_ERROR_CODES, type ProtocolErrorCode } from './errors.ts';
export { toBase64, fromBase64, toHex, bytesEqual } from './bytes.ts';
export {
  type Identity,
  generateIdentity,
  saveIdentity,
  loadIdentity,
  identityToJson,
  identityFromJson,
  publicKeyToString,
  parsePublicKey,
} from './identity.ts';
export { Enrollment, SITE_ID_RE, type Admission, type EnrollmentFile } from './enrollment.ts';
export {
  PROTOCOL_VERSION,
  REPLY_ERROR_CODES,
  fitConfigSchema,
  evalConfigSchema,
  helloSchema,
  welcomeSchema,
  refusedSchema,
  replyErrorSchema,
  sessionMessageSchema,
  secaggSetupSchema,
  SECAGG_WIRE_STAGES,
  type SecAggSetupContext,
  type ReplyErrorCode,
  type ReplyError,
  type Reply,
  type FitConfig,
  type EvalConfig,
  type Hello,
  type Welcome,
  type Refused,
  type SessionMessage,
  type SessionMessageType,
  type MessageOf,
} from './messages.ts';
export type { ClientToServerEvents, ServerToClientEvents } from './events.ts';
export { createHello, verifyHello, createWelcome, verifyWelcome, type HelloState, type VerifiedHello } from './handshake.ts';
export { type Logger, silentLogger } from './common/index.ts';
export { ReplayWindow } from './replay-window.ts';
export { SecureSession, DEFAULT_MAX_ENVELOPE_BYTES, type SessionRole, type SecureSessionOptions } from './secure-session.ts';
export { encodeMessage, decodeMessage } from './message-codec.ts';
export { encodeWeightSet, decodeWeightSet, encodedSize, type DecodeLimits } from './tensor-codec.ts';
export { TransferStore, type TransferStoreOptions } from './transfer-store.ts';
export { SecureChannel, sealedPort, type SealedPort, type ChannelStats, type SecureChannelOptions } from './secure-channel.ts';
export type { Transport, EventMap, EventArgs, CloseReason } from './transport.ts';
export { createMemoryTransportPair, type SiteTransport, type CoordinatorTransport } from './memory-transport.ts';
export { socketIoServerTransport, socketIoClientTransport } from './socketio-transport.ts';
export { sourceStatsToVectors, sourceStatsFromVectors, SOURCE_STATS_REQUEST } from './source-stats-vectors.ts';
export {
  CLASS_HISTOGRAM_REQUEST,
  classHistogramToVectors,
  classHistogramFromVectors,
  classHistogramReportInClear,
  type ClassHistogramReport,
} from './class-histogram-vectors.ts';
export { symmetricBackend, type SymmetricBackend } from './sodium.ts';
