/**
 * Stage messages of a SecAgg+ round (Bonawitz et al., CCS 2017, Fig. 4 rounds 0-4; stage names as in Flower's
 * `secure_aggregation` workflow). Coordinator -> site messages are "instructions", site -> coordinator "replies".
 *
 *   stage                    coordinator sends (to)                   site replies
 *   setup                    SetupIns (all selected)                  AdvertiseKeysRes (signed public keys)
 *   share-keys               ShareKeysIns (each U1 site: neighbours'  EncryptedSharesRes (one box per neighbour)
 *                              signed keys)
 *   collect-masked-vectors   CollectIns (each U2 site: boxes          MaskedVectorRes (masked Z_2^32 vector)
 *                              addressed to it)
 *   consistency-check        ConsistencyCheckIns (each U3 site:       SurvivorsSignatureRes (identity signature
 *                              survivors U3, dropped U2\U3)              over U3)
 *   unmask                   UnmaskIns (each U4 site: U3, U2\U3 and   UnmaskSharesRes (b-shares of survivors,
 *                              the U4 signatures over U3)                s_sk-shares of dropped neighbours)
 *
 * Binary fields are Uint8Array/Uint32Array; the wire codec (protocol/ outside secagg) frames them.
 */
import type { SecAggConfig } from './config.ts';
import type { SurvivorSignature } from './consistency.ts';
import type { SignedRoundKeys } from './round-keys.ts';

export const SECAGG_VERSION = 1 as const;

export type SecAggStage = 'setup' | 'share-keys' | 'collect-masked-vectors' | 'consistency-check' | 'unmask';
export const SECAGG_STAGES: readonly SecAggStage[] = [
  'setup',
  'share-keys',
  'collect-masked-vectors',
  'consistency-check',
  'unmask',
];

export interface SetupIns {
  readonly type: 'secagg/setup';
  readonly version: typeof SECAGG_VERSION;
  readonly config: SecAggConfig;
}

export interface AdvertiseKeysRes extends SignedRoundKeys {
  readonly type: 'secagg/advertise-keys';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
}

export interface ShareKeysIns {
  readonly type: 'secagg/share-keys';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  /** Signed round keys of the recipient's neighbours that advertised (U1 intersect N(i)). */
  readonly keys: readonly SignedRoundKeys[];
}

export interface EncryptedShare {
  readonly to: string;
  readonly ciphertext: Uint8Array;
}

export interface EncryptedSharesRes {
  readonly type: 'secagg/encrypted-shares';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  readonly siteId: string;
  readonly shares: readonly EncryptedShare[];
}

export interface RelayedShare {
  readonly from: string;
  readonly ciphertext: Uint8Array;
}

export interface CollectIns {
  readonly type: 'secagg/collect-masked-vectors';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  /** Boxes addressed to the recipient by neighbours that completed share-keys (U2 intersect N(i)). */
  readonly ciphertexts: readonly RelayedShare[];
}

export interface MaskedVectorRes {
  readonly type: 'secagg/masked-vector';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  readonly siteId: string;
  readonly masked: Uint32Array;
}

export interface ConsistencyCheckIns {
  readonly type: 'secagg/consistency-check';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  /** U3: sites whose masked vector is in the sum. */
  readonly survivors: readonly string[];
  /** U2 \ U3: sites that shared keys but whose masked vector never arrived. */
  readonly dropped: readonly string[];
}

export interface SurvivorsSignatureRes {
  readonly type: 'secagg/survivors-signature';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  readonly siteId: string;
  /** Ed25519 identity signature over `survivorsMessage(roundId, survivors)`. */
  readonly signature: Uint8Array;
}

export interface UnmaskIns {
  readonly type: 'secagg/unmask';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  /** U3, exactly as in the consistency check. */
  readonly survivors: readonly string[];
  /** U2 \ U3, exactly as in the consistency check. */
  readonly dropped: readonly string[];
  /** Signatures over U3 by the sites that answered the consistency check (U4); at least t are required. */
  readonly signatures: readonly SurvivorSignature[];
}

export interface RevealedShare {
  /** The site whose secret this is a share of. */
  readonly of: string;
  readonly share: Uint8Array;
}

export interface UnmaskSharesRes {
  readonly type: 'secagg/unmask-shares';
  readonly version: typeof SECAGG_VERSION;
  readonly roundId: string;
  readonly siteId: string;
  /** Shares of b_j for neighbours j in U3. */
  readonly selfMaskShares: readonly RevealedShare[];
  /** Shares of s_j^SK for neighbours j in U2 \ U3. */
  readonly maskKeyShares: readonly RevealedShare[];
}

export type SecAggInstruction = SetupIns | ShareKeysIns | CollectIns | ConsistencyCheckIns | UnmaskIns;
export type SecAggReply =
  | AdvertiseKeysRes
  | EncryptedSharesRes
  | MaskedVectorRes
  | SurvivorsSignatureRes
  | UnmaskSharesRes;

/** The stage an instruction or reply belongs to. */
export function stageOf(msg: SecAggInstruction | SecAggReply): SecAggStage {
  switch (msg.type) {
    case 'secagg/setup':
    case 'secagg/advertise-keys':
      return 'setup';
    case 'secagg/share-keys':
    case 'secagg/encrypted-shares':
      return 'share-keys';
    case 'secagg/collect-masked-vectors':
    case 'secagg/masked-vector':
      return 'collect-masked-vectors';
    case 'secagg/consistency-check':
    case 'secagg/survivors-signature':
      return 'consistency-check';
    case 'secagg/unmask':
    case 'secagg/unmask-shares':
      return 'unmask';
    default: {
      const never: never = msg;
      throw new Error(`unknown secagg message ${(never as { type: string }).type}`);
    }
  }
}

const ID_OVERHEAD = 4; // a length prefix per string/binary field in a compact codec

function strBytes(s: string): number {
  return ID_OVERHEAD + Buffer.byteLength(s, 'utf8');
}

/**
 * Payload bytes of a message in a compact binary framing (each string/binary field = 4-byte length + bytes,
 * plus 2 bytes for type+version). Excludes the session envelope (secretbox MAC + nonce) added by the transport.
 */
export function messageBytes(msg: SecAggInstruction | SecAggReply): number {
  const head = 2;
  switch (msg.type) {
    case 'secagg/setup': {
      const c = msg.config;
      return head + strBytes(c.roundId) + c.siteIds.reduce((a, s) => a + strBytes(s), 4) + 4 * 4 + 8 + 8 + 32 + 4;
    }
    case 'secagg/advertise-keys':
      return head + strBytes(msg.roundId) + strBytes(msg.siteId) + 3 * ID_OVERHEAD + 32 + 32 + 64;
    case 'secagg/share-keys':
      return head + strBytes(msg.roundId) + 4 + msg.keys.reduce((a, k) => a + strBytes(k.siteId) + 3 * ID_OVERHEAD + 128, 0);
    case 'secagg/encrypted-shares':
      return head + strBytes(msg.roundId) + strBytes(msg.siteId) + 4 +
        msg.shares.reduce((a, s) => a + strBytes(s.to) + ID_OVERHEAD + s.ciphertext.length, 0);
    case 'secagg/collect-masked-vectors':
      return head + strBytes(msg.roundId) + 4 +
        msg.ciphertexts.reduce((a, s) => a + strBytes(s.from) + ID_OVERHEAD + s.ciphertext.length, 0);
    case 'secagg/masked-vector':
      return head + strBytes(msg.roundId) + strBytes(msg.siteId) + ID_OVERHEAD + msg.masked.byteLength;
    case 'secagg/consistency-check':
      return head + strBytes(msg.roundId) + 8 +
        [...msg.survivors, ...msg.dropped].reduce((a, s) => a + strBytes(s), 0);
    case 'secagg/survivors-signature':
      return head + strBytes(msg.roundId) + strBytes(msg.siteId) + ID_OVERHEAD + msg.signature.length;
    case 'secagg/unmask':
      return head + strBytes(msg.roundId) + 12 +
        [...msg.survivors, ...msg.dropped].reduce((a, s) => a + strBytes(s), 0) +
        msg.signatures.reduce((a, s) => a + strBytes(s.siteId) + ID_OVERHEAD + s.signature.length, 0);
    case 'secagg/unmask-shares':
      return head + strBytes(msg.roundId) + strBytes(msg.siteId) + 8 +
        [...msg.selfMaskShares, ...msg.maskKeyShares].reduce((a, s) => a + strBytes(s.of) + ID_OVERHEAD + s.share.length, 0);
    default: {
      const never: never = msg;
      throw new Error(`unknown secagg message ${(never as { type: string }).type}`);
    }
  }
}
