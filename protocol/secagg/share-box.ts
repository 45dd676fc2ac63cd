/**
 * Shamir shares of the self-mask seed b_u and of the mask secret key s_u^SK (Bonawitz et al., CCS 2017, Sec. 4
 * round 1 "ShareKeys"), sealed site-to-site with `nacl.box` under the share-encryption keys (c_u^SK, c_v^PK) so the
 * coordinator relays only ciphertexts. The plaintext repeats round, sender and recipient ids, which the recipient
 * checks (Bonawitz: "assert u' = u and v' = v"), so a relay cannot replay a share to another site or round.
 *
 * Sharing is GF(2^8) Shamir from the audited `shamir-secret-sharing` package (threshold t of k holders).
 */
import nacl from 'tweetnacl';
import { combine, split } from 'shamir-secret-sharing';
import { bytesEqual, concatBytes, decodeUtf8, isBytes, lengthPrefixed, readLengthPrefixed, utf8 } from './bytes.ts';
import { boxBefore } from './curves.ts';
import { SecAggError } from './errors.ts';

const SHARE_DOMAIN = utf8('fedsfda/secagg/v1/share-bundle');

/** What site `from` hands to its neighbour `to`: one share of b_from and one of s_from^SK. */
export interface ShareBundle {
  readonly roundId: string;
  readonly from: string;
  readonly to: string;
  readonly selfMaskSeedShare: Uint8Array;
  readonly maskKeyShare: Uint8Array;
}

/** Splits a 32-byte secret into `holders` shares, any `threshold` of which reconstruct it. */
export async function splitSecret(secret: Uint8Array, holders: number, threshold: number): Promise<Uint8Array[]> {
  if (holders < 2 || holders > 255 || threshold < 2 || threshold > holders) {
    throw new SecAggError('bad-config', `cannot share among ${holders} holders with threshold ${threshold}`);
  }
  return split(secret, holders, threshold);
}

/**
 * Reconstructs a secret from at least `threshold` shares. Fewer shares are refused outright (`below-threshold`):
 * Lagrange interpolation of fewer points would return an unrelated value, never the secret, and nothing partial
 * should be handed out.
 */
export async function combineShares(shares: readonly Uint8Array[], threshold: number): Promise<Uint8Array> {
  if (shares.length < threshold) {
    throw new SecAggError('below-threshold', `${shares.length} shares available, threshold is ${threshold}`);
  }
  try {
    return await combine(shares.slice(0, threshold) as Uint8Array[]);
  } catch (e) {
    throw new SecAggError('bad-ciphertext', `shares do not combine: ${(e as Error).message}`);
  }
}

function encodeBundle(b: ShareBundle): Uint8Array {
  return concatBytes([
    lengthPrefixed(SHARE_DOMAIN),
    lengthPrefixed(utf8(b.roundId)),
    lengthPrefixed(utf8(b.from)),
    lengthPrefixed(utf8(b.to)),
    lengthPrefixed(b.selfMaskSeedShare),
    lengthPrefixed(b.maskKeyShare),
  ]);
}

/** nacl.box(bundle) with a random nonce; the ciphertext is nonce || box. */
export function sealShareBundle(b: ShareBundle, senderShareSk: Uint8Array, recipientSharePk: Uint8Array): Uint8Array {
  const nonce = nacl.randomBytes(nacl.box.nonceLength);
  // nacl.box == secretbox under box.before(pk, sk); the agreement runs through OpenSSL (curves.ts).
  const box = nacl.secretbox(encodeBundle(b), nonce, boxBefore(recipientSharePk, senderShareSk));
  return concatBytes([nonce, box]);
}

/**
 * Opens a relayed ciphertext and checks that it really is the share `expectedFrom` sent to `expectedTo` in this
 * round. Any failure is `bad-ciphertext`.
 */
export function openShareBundle(
  ciphertext: Uint8Array,
  recipientShareSk: Uint8Array,
  senderSharePk: Uint8Array,
  expected: { roundId: string; from: string; to: string },
): ShareBundle {
  if (!isBytes(ciphertext) || ciphertext.length < nacl.box.nonceLength + nacl.box.overheadLength) {
    throw new SecAggError('bad-ciphertext', `share ciphertext from "${expected.from}" is too short`);
  }
  const nonce = ciphertext.subarray(0, nacl.box.nonceLength);
  const plain = nacl.secretbox.open(ciphertext.subarray(nacl.box.nonceLength), nonce, boxBefore(senderSharePk, recipientShareSk));
  if (!plain) throw new SecAggError('bad-ciphertext', `share ciphertext from "${expected.from}" does not authenticate`);
  const [domain, round, from, to, seedShare, keyShare] = readLengthPrefixed(plain, 6);
  if (!bytesEqual(domain, SHARE_DOMAIN)) throw new SecAggError('bad-ciphertext', 'share bundle has a wrong domain tag');
  const bundle: ShareBundle = {
    roundId: decodeUtf8(round),
    from: decodeUtf8(from),
    to: decodeUtf8(to),
    selfMaskSeedShare: seedShare.slice(),
    maskKeyShare: keyShare.slice(),
  };
  if (bundle.roundId !== expected.roundId || bundle.from !== expected.from || bundle.to !== expected.to) {
    throw new SecAggError(
      'bad-ciphertext',
      `share bundle is for round "${bundle.roundId}" ${bundle.from}->${bundle.to}, expected ` +
        `"${expected.roundId}" ${expected.from}->${expected.to}`,
    );
  }
  return bundle;
}
