/**
 * Key derivation for masks (Bonawitz et al., CCS 2017, Sec. 4 round 2: s_{u,v} = KA.agree(s_u^SK, s_v^PK),
 * p_{u,v} = gamma_{u,v} * PRG(s_{u,v}), gamma = +1 if u < v else -1).
 * The agreement is X25519 (`nacl.scalarMult`, computed through OpenSSL in curves.ts); the seed is SHA-512 (nacl.hash) over a domain tag, the round id,
 * the two site ids in round order and the shared point, truncated to 32 bytes, so seeds from different rounds,
 * pairs or purposes can never coincide.
 */
import nacl from 'tweetnacl';
import { concatBytes, lengthPrefixed, utf8 } from './bytes.ts';
import { x25519 } from './curves.ts';

const PAIRWISE_DOMAIN = utf8('fedsfda/secagg/v1/pairwise-seed');

function fixedNonce(tag: string): Uint8Array {
  return nacl.hash(utf8(`fedsfda/secagg/v1/nonce/${tag}`)).slice(0, 24);
}

/** XSalsa20 nonce for pairwise masks. Seeds are fresh per round and pair, so a fixed nonce is safe. */
export const PAIRWISE_MASK_NONCE = fixedNonce('pairwise-mask');
/** XSalsa20 nonce for self masks (a different nonce keeps the two purposes apart even for equal seeds). */
export const SELF_MASK_NONCE = fixedNonce('self-mask');
/** XSalsa20 nonce for the neighbour-graph permutation drawn from the round seed. */
export const GRAPH_NONCE = fixedNonce('neighbour-graph');

/**
 * The 32-byte pairwise mask seed between `selfId` and `peerId`. Both sides get the same bytes because the ids are
 * hashed in round order (lower index first) and X25519 is symmetric.
 */
export function pairwiseSeed(
  roundId: string,
  selfId: string,
  selfIndex: number,
  peerId: string,
  peerIndex: number,
  selfMaskSecretKey: Uint8Array,
  peerMaskPublicKey: Uint8Array,
): Uint8Array {
  // x25519 refuses low-order peer keys, whose "shared secret" would be public.
  const shared = x25519(selfMaskSecretKey, peerMaskPublicKey);
  const [lo, hi] = selfIndex < peerIndex ? [selfId, peerId] : [peerId, selfId];
  const digest = nacl.hash(
    concatBytes([
      lengthPrefixed(PAIRWISE_DOMAIN),
      lengthPrefixed(utf8(roundId)),
      lengthPrefixed(utf8(lo)),
      lengthPrefixed(utf8(hi)),
      lengthPrefixed(shared),
    ]),
  );
  return digest.slice(0, 32);
}

/** gamma_{u,v} of Bonawitz et al. Sec. 4: + for u < v, - for u > v (by index in the round's site list). */
export function pairwiseSign(selfIndex: number, peerIndex: number): 1 | -1 {
  return selfIndex < peerIndex ? 1 : -1;
}
