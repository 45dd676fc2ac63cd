/**
 * Optional libsodium acceleration for the primitives on the protocol's hot paths:
 * - XSalsa20 keystream expansion of secure-aggregation masks (`secagg/keystream.ts`);
 * - XSalsa20-Poly1305 secretbox of session envelopes (`secure-session.ts`);
 * - X25519 and Ed25519 of secure-aggregation rounds, O(n k) per round (`secagg/curves.ts`).
 *
 * `sodium-native` is an optionalDependency with prebuilt binaries for the common platforms; libsodium's
 * Salsa20 runs 4/8 blocks per SIMD register (about 3 GB/s here against 0.2 GB/s for the pure-JS loop). Both
 * primitives are the same ciphers as tweetnacl's, byte for byte (tested in sodium.test.ts), so a site with the
 * addon and a coordinator without it interoperate. When the addon is missing or FEDSFDA_CRYPTO=js, every caller
 * uses the pure-JS code; nothing else changes.
 */
import { createRequire } from 'node:module';
import { endianness } from 'node:os';

/** The subset of sodium-native used here (sodium-native 5 accepts any Uint8Array view). */
interface SodiumNative {
  crypto_stream_xor_STATEBYTES: number;
  crypto_stream_xor_init(state: Uint8Array, nonce: Uint8Array, key: Uint8Array): void;
  crypto_stream_xor_update(state: Uint8Array, c: Uint8Array, m: Uint8Array): void;
  crypto_stream_xor_final(state: Uint8Array): void;
  crypto_secretbox_easy(c: Uint8Array, m: Uint8Array, n: Uint8Array, k: Uint8Array): void;
  crypto_secretbox_open_easy(m: Uint8Array, c: Uint8Array, n: Uint8Array, k: Uint8Array): boolean;
  crypto_stream_PRIMITIVE: string;
  crypto_scalarmult(q: Uint8Array, n: Uint8Array, p: Uint8Array): void;
  crypto_scalarmult_base(q: Uint8Array, n: Uint8Array): void;
  crypto_sign_detached(sig: Uint8Array, m: Uint8Array, sk: Uint8Array): void;
  crypto_sign_verify_detached(sig: Uint8Array, m: Uint8Array, pk: Uint8Array): boolean;
}

export type SymmetricBackend = 'libsodium' | 'js';

function load(): { sodium: SodiumNative | null; reason: string } {
  if (process.env.FEDSFDA_CRYPTO === 'js') return { sodium: null, reason: 'FEDSFDA_CRYPTO=js' };
  // Keystream words are read through Uint32Array views of the byte stream: little-endian hosts only.
  if (endianness() !== 'LE') return { sodium: null, reason: 'big-endian host' };
  try {
    const s = createRequire(import.meta.url)('sodium-native') as SodiumNative;
    if (s.crypto_stream_PRIMITIVE !== 'xsalsa20') return { sodium: null, reason: `crypto_stream is ${s.crypto_stream_PRIMITIVE}` };
    return { sodium: s, reason: 'sodium-native loaded' };
  } catch (e) {
    return { sodium: null, reason: `sodium-native not available: ${(e as Error).message.split('\n')[0]}` };
  }
}

const loaded = load();

/** Which implementation seals envelopes and expands masks in this process, and why. */
export function symmetricBackend(): { name: SymmetricBackend; reason: string } {
  return { name: loaded.sodium ? 'libsodium' : 'js', reason: loaded.reason };
}

/** A running XSalsa20 keystream: each `read` fills its argument with the next bytes of the stream. */
export interface KeystreamReader {
  read(into: Uint8Array): void;
  /** Wipes the stream state. */
  close(): void;
}

let zeros = new Uint8Array(0);

/**
 * XSalsa20(key, nonce) as a stream of reads (libsodium's crypto_stream_xor over zeros), or null when libsodium is
 * not loaded. Successive reads continue one keystream, so chunked reads equal the one-shot stream.
 */
export function sodiumKeystream(key: Uint8Array, nonce: Uint8Array): KeystreamReader | null {
  const s = loaded.sodium;
  if (!s) return null;
  const state = new Uint8Array(s.crypto_stream_xor_STATEBYTES);
  s.crypto_stream_xor_init(state, nonce, key);
  return {
    read(into) {
      if (zeros.length < into.length) zeros = new Uint8Array(into.length);
      s.crypto_stream_xor_update(state, into, zeros.subarray(0, into.length));
    },
    close() {
      s.crypto_stream_xor_final(state);
      state.fill(0);
    },
  };
}

/**
 * secretbox (16-byte MAC || ciphertext, the layout of nacl.secretbox) written into `into` (message.length + 16
 * bytes; allocated when omitted), or null when libsodium is not loaded.
 */
export function sodiumSecretbox(message: Uint8Array, nonce: Uint8Array, key: Uint8Array, into?: Uint8Array): Uint8Array | null {
  const s = loaded.sodium;
  if (!s) return null;
  const out = into ?? new Uint8Array(message.length + 16);
  if (out.length !== message.length + 16) throw new RangeError(`secretbox output must be ${message.length + 16} bytes`);
  s.crypto_secretbox_easy(out, message, nonce, key);
  return out;
}

/**
 * secretbox.open: the plaintext, `false` when authentication fails, or null when libsodium is not loaded.
 * The ciphertext must be at least 16 bytes (callers check lengths before).
 */
export function sodiumSecretboxOpen(box: Uint8Array, nonce: Uint8Array, key: Uint8Array): Uint8Array | false | null {
  const s = loaded.sodium;
  if (!s) return null;
  const out = new Uint8Array(box.length - 16);
  return s.crypto_secretbox_open_easy(out, box, nonce, key) ? out : false;
}

/** X25519(sk, pk) (libsodium refuses an all-zero result: it throws), or null when libsodium is not loaded. */
export function sodiumScalarMult(secretKey: Uint8Array, publicKey: Uint8Array): Uint8Array | null {
  const s = loaded.sodium;
  if (!s) return null;
  const q = new Uint8Array(32);
  s.crypto_scalarmult(q, secretKey, publicKey);
  return q;
}

/** X25519(sk, 9): the public key of a secret key, or null when libsodium is not loaded. */
export function sodiumScalarMultBase(secretKey: Uint8Array): Uint8Array | null {
  const s = loaded.sodium;
  if (!s) return null;
  const q = new Uint8Array(32);
  s.crypto_scalarmult_base(q, secretKey);
  return q;
}

/** Ed25519 detached signature with a 64-byte (seed || public key) secret key, as tweetnacl's; null without libsodium. */
export function sodiumSignDetached(message: Uint8Array, secretKey: Uint8Array): Uint8Array | null {
  const s = loaded.sodium;
  if (!s) return null;
  const sig = new Uint8Array(64);
  s.crypto_sign_detached(sig, message, secretKey);
  return sig;
}

/** Ed25519 verification (true/false), or null when libsodium is not loaded. */
export function sodiumVerifyDetached(message: Uint8Array, signature: Uint8Array, publicKey: Uint8Array): boolean | null {
  const s = loaded.sodium;
  if (!s) return null;
  return s.crypto_sign_verify_detached(signature, message, publicKey);
}
