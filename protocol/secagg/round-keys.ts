/**
 * Per-round key material of one site (Bonawitz et al., CCS 2017, Sec. 4, round 0 "AdvertiseKeys"):
 * two X25519 key pairs, (c_pk, c_sk) for encrypting shares and (s_pk, s_sk) for pairwise mask agreement,
 * and — the part Flower's SecAgg+ leaves out — an Ed25519 signature over both public keys by the site's
 * enrolled identity key (Bonawitz et al. Sec. 4 "active adversary" variant, round 0 sigma_u), so a coordinator
 * that relays keys cannot substitute its own.
 */
import nacl from 'tweetnacl';
import { concatBytes, isBytes, lengthPrefixed, utf8 } from './bytes.ts';
import { ed25519Sign, ed25519Verify, x25519KeyPair } from './curves.ts';
import { SecAggError } from './errors.ts';

export interface RoundKeyPairs {
  readonly mask: nacl.BoxKeyPair;
  readonly share: nacl.BoxKeyPair;
}

/** Public keys of one site as relayed by the coordinator, with the identity signature over them. */
export interface SignedRoundKeys {
  readonly siteId: string;
  readonly maskPublicKey: Uint8Array;
  readonly sharePublicKey: Uint8Array;
  readonly signature: Uint8Array;
}

/** Sites enrolled by Ed25519 identity public key (DESIGN.md Sec. 5): siteId -> 32-byte public key. */
export type EnrolledIdentities = ReadonlyMap<string, Uint8Array>;

const KEYS_DOMAIN = utf8('fedsfda/secagg/v1/round-keys');

export function generateRoundKeyPairs(): RoundKeyPairs {
  return { mask: x25519KeyPair(), share: x25519KeyPair() };
}

/** The exact bytes that are signed: domain, round id, site id and both public keys, each length-prefixed. */
export function roundKeysMessage(roundId: string, siteId: string, maskPk: Uint8Array, sharePk: Uint8Array): Uint8Array {
  return concatBytes([
    lengthPrefixed(KEYS_DOMAIN),
    lengthPrefixed(utf8(roundId)),
    lengthPrefixed(utf8(siteId)),
    lengthPrefixed(maskPk),
    lengthPrefixed(sharePk),
  ]);
}

export function signRoundKeys(
  roundId: string,
  siteId: string,
  keys: RoundKeyPairs,
  identitySecretKey: Uint8Array,
): SignedRoundKeys {
  if (!isBytes(identitySecretKey, nacl.sign.secretKeyLength)) {
    throw new SecAggError('bad-config', `identity secret key must be ${nacl.sign.secretKeyLength} bytes`);
  }
  const msg = roundKeysMessage(roundId, siteId, keys.mask.publicKey, keys.share.publicKey);
  return {
    siteId,
    maskPublicKey: keys.mask.publicKey,
    sharePublicKey: keys.share.publicKey,
    signature: ed25519Sign(msg, identitySecretKey),
  };
}

/**
 * Checks a peer's relayed keys against its enrolled identity before any use. Throws `unknown-site` when the
 * site is not enrolled and `bad-signature` when the signature does not verify (a swapped or altered key).
 */
export function verifyRoundKeys(roundId: string, keys: SignedRoundKeys, enrolled: EnrolledIdentities): void {
  const identity = enrolled.get(keys.siteId);
  if (!identity) throw new SecAggError('unknown-site', `site "${keys.siteId}" is not enrolled`);
  if (!isBytes(keys.maskPublicKey, 32) || !isBytes(keys.sharePublicKey, 32) || !isBytes(keys.signature, 64)) {
    throw new SecAggError('malformed-message', `round keys of "${keys.siteId}" have wrong field lengths`);
  }
  const msg = roundKeysMessage(roundId, keys.siteId, keys.maskPublicKey, keys.sharePublicKey);
  if (!ed25519Verify(msg, keys.signature, identity)) {
    throw new SecAggError(
      'bad-signature',
      `round keys of "${keys.siteId}" are not signed by its enrolled identity key (substituted by the relay?)`,
    );
  }
}
