/**
 * X25519 and Ed25519 for secure-aggregation rounds: libsodium when loaded (../sodium.ts), else OpenSSL
 * (node:crypto) for agreement and verification and tweetnacl for key generation and signing. Same algorithms
 * (RFC 7748 / RFC 8032), same key bytes as tweetnacl — curves.test.ts checks equality. A round does O(n k)
 * agreements and verifications: tweetnacl's pure-JS field arithmetic takes ~2.8 ms per scalarMult and ~18 ms
 * per verify here, OpenSSL ~0.3 ms including the DER key import, libsodium ~0.05 ms.
 */
import { createPrivateKey, createPublicKey, diffieHellman, verify, type KeyObject } from 'node:crypto';
import nacl from 'tweetnacl';
import { sodiumScalarMult, sodiumScalarMultBase, sodiumSignDetached, sodiumVerifyDetached } from '../sodium.ts';
import { SecAggError } from './errors.ts';
import { hsalsa20Bytes } from './keystream.ts';

// DER prefixes of a raw 32-byte key in PKCS#8 / SPKI (RFC 8410, OIDs 1.3.101.110 X25519, 1.3.101.112 Ed25519).
const X25519_PKCS8 = Buffer.from('302e020100300506032b656e04220420', 'hex');
const X25519_SPKI = Buffer.from('302a300506032b656e032100', 'hex');
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex');

function key32(b: Uint8Array, what: string): Buffer {
  if (!(b instanceof Uint8Array) || b.length !== 32) throw new SecAggError('malformed-message', `${what} must be 32 bytes`);
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength);
}

/** X25519(sk, pk): the same bytes as `nacl.scalarMult(sk, pk)`. A low-order public key is refused. */
export function x25519(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array {
  key32(secretKey, 'X25519 secret key');
  key32(publicKey, 'X25519 public key');
  let fast: Uint8Array | null;
  try {
    fast = sodiumScalarMult(secretKey, publicKey);
  } catch (e) {
    throw new SecAggError('malformed-message', `X25519 agreement refused (low-order key?): ${(e as Error).message}`);
  }
  if (fast) {
    if (fast.every((b) => b === 0)) throw new SecAggError('malformed-message', 'X25519 agreement with a low-order key');
    return fast;
  }
  let privateKey: KeyObject;
  let pub: KeyObject;
  try {
    privateKey = createPrivateKey({ key: Buffer.concat([X25519_PKCS8, key32(secretKey, 'X25519 secret key')]), format: 'der', type: 'pkcs8' });
    pub = createPublicKey({ key: Buffer.concat([X25519_SPKI, key32(publicKey, 'X25519 public key')]), format: 'der', type: 'spki' });
  } catch (e) {
    if (e instanceof SecAggError) throw e;
    throw new SecAggError('malformed-message', `invalid X25519 key: ${(e as Error).message}`);
  }
  let shared: Buffer;
  try {
    shared = diffieHellman({ privateKey, publicKey: pub });
  } catch (e) {
    // OpenSSL refuses an all-zero result, i.e. a low-order public key whose "shared secret" is public.
    throw new SecAggError('malformed-message', `X25519 agreement refused (low-order key?): ${(e as Error).message}`);
  }
  if (shared.every((b) => b === 0)) throw new SecAggError('malformed-message', 'X25519 agreement with a low-order key');
  return new Uint8Array(shared);
}

/** `nacl.box.before(pk, sk)`: HSalsa20 of the X25519 point with a zero nonce (NaCl crypto_box_beforenm). */
export function boxBefore(publicKey: Uint8Array, secretKey: Uint8Array): Uint8Array {
  return hsalsa20Bytes(x25519(secretKey, publicKey), new Uint8Array(16));
}

/** `nacl.sign.detached.verify(msg, sig, pk)` through OpenSSL. False for any malformed key or signature. */
export function ed25519Verify(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean {
  if (!(signature instanceof Uint8Array) || signature.length !== 64) return false;
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== 32) return false;
  try {
    const fast = sodiumVerifyDetached(message, signature, publicKey);
    if (fast !== null) return fast;
    const pub = createPublicKey({ key: Buffer.concat([ED25519_SPKI, key32(publicKey, 'Ed25519 public key')]), format: 'der', type: 'spki' });
    return verify(null, message, pub, signature);
  } catch {
    return false;
  }
}

/** X25519(sk, base point): the same bytes as `nacl.scalarMult.base(sk)`. */
export function x25519Base(secretKey: Uint8Array): Uint8Array {
  key32(secretKey, 'X25519 secret key');
  return sodiumScalarMultBase(secretKey) ?? nacl.scalarMult.base(secretKey);
}

/** A fresh X25519 key pair, as `nacl.box.keyPair()` (random secret key from tweetnacl's CSPRNG). */
export function x25519KeyPair(): nacl.BoxKeyPair {
  const secretKey = nacl.randomBytes(32);
  return { publicKey: x25519Base(secretKey), secretKey };
}

/** `nacl.sign.detached(msg, sk)`: Ed25519 with a 64-byte (seed || public key) secret key. */
export function ed25519Sign(message: Uint8Array, secretKey: Uint8Array): Uint8Array {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== 64) {
    throw new SecAggError('bad-config', 'Ed25519 secret key must be 64 bytes');
  }
  return sodiumSignDetached(message, secretKey) ?? nacl.sign.detached(message, secretKey);
}
