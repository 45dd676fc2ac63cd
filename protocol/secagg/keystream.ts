/**
 * XSalsa20 keystream as 32-bit words, for expanding 32-byte mask seeds into vectors over Z_2^32.
 *
 * Why XSalsa20 and why our own word-level loop: masks must come from a cryptographic PRG (Bonawitz et al.,
 * CCS 2017, Sec. 4 "PRG"; Bell et al., CCS 2020, Sec. 3), never Math.random or a 32-bit generator. tweetnacl
 * implements XSalsa20 (`nacl.lowlevel.crypto_stream`) but only byte-wise into a fresh buffer; masking 1M-parameter
 * vectors needs the words added straight into the target. This file is the same cipher (Bernstein, "Extending
 * the Salsa20 nonce", 2008: HSalsa20 subkey from nonce[0..16], then Salsa20/20 with nonce[16..24]); its output
 * is tested byte-for-byte against tweetnacl's `crypto_stream` (keystream.test.ts).
 * When libsodium is loaded (`../sodium.ts`), its SIMD XSalsa20 produces the same words about 5-9x faster;
 * this loop is the fallback and the reference.
 */
import { sodiumKeystream } from '../sodium.ts';
import { CHUNK_WORDS, u32Folder } from './u32-simd.ts';
import { SecAggError } from './errors.ts';

const SIGMA0 = 0x61707865;
const SIGMA1 = 0x3320646e;
const SIGMA2 = 0x79622d32;
const SIGMA3 = 0x6b206574;

function le32(b: Uint8Array, o: number): number {
  return (b[o] | (b[o + 1] << 8) | (b[o + 2] << 16) | (b[o + 3] << 24)) >>> 0;
}

/** HSalsa20 (XSalsa20 paper Sec. 2): 20 rounds over key + 16-byte nonce, output words 0,5,10,15,6,7,8,9. */
function hsalsa20(key: Uint8Array, nonce: Uint8Array): Uint32Array {
  let x0 = SIGMA0, x1 = le32(key, 0), x2 = le32(key, 4), x3 = le32(key, 8), x4 = le32(key, 12);
  let x5 = SIGMA1, x6 = le32(nonce, 0), x7 = le32(nonce, 4), x8 = le32(nonce, 8), x9 = le32(nonce, 12);
  let x10 = SIGMA2, x11 = le32(key, 16), x12 = le32(key, 20), x13 = le32(key, 24), x14 = le32(key, 28);
  let x15 = SIGMA3;
  let u: number;
  for (let i = 0; i < 20; i += 2) {
    u = (x0 + x12) | 0; x4 ^= (u << 7) | (u >>> 25);
    u = (x4 + x0) | 0; x8 ^= (u << 9) | (u >>> 23);
    u = (x8 + x4) | 0; x12 ^= (u << 13) | (u >>> 19);
    u = (x12 + x8) | 0; x0 ^= (u << 18) | (u >>> 14);
    u = (x5 + x1) | 0; x9 ^= (u << 7) | (u >>> 25);
    u = (x9 + x5) | 0; x13 ^= (u << 9) | (u >>> 23);
    u = (x13 + x9) | 0; x1 ^= (u << 13) | (u >>> 19);
    u = (x1 + x13) | 0; x5 ^= (u << 18) | (u >>> 14);
    u = (x10 + x6) | 0; x14 ^= (u << 7) | (u >>> 25);
    u = (x14 + x10) | 0; x2 ^= (u << 9) | (u >>> 23);
    u = (x2 + x14) | 0; x6 ^= (u << 13) | (u >>> 19);
    u = (x6 + x2) | 0; x10 ^= (u << 18) | (u >>> 14);
    u = (x15 + x11) | 0; x3 ^= (u << 7) | (u >>> 25);
    u = (x3 + x15) | 0; x7 ^= (u << 9) | (u >>> 23);
    u = (x7 + x3) | 0; x11 ^= (u << 13) | (u >>> 19);
    u = (x11 + x7) | 0; x15 ^= (u << 18) | (u >>> 14);
    u = (x0 + x3) | 0; x1 ^= (u << 7) | (u >>> 25);
    u = (x1 + x0) | 0; x2 ^= (u << 9) | (u >>> 23);
    u = (x2 + x1) | 0; x3 ^= (u << 13) | (u >>> 19);
    u = (x3 + x2) | 0; x0 ^= (u << 18) | (u >>> 14);
    u = (x5 + x4) | 0; x6 ^= (u << 7) | (u >>> 25);
    u = (x6 + x5) | 0; x7 ^= (u << 9) | (u >>> 23);
    u = (x7 + x6) | 0; x4 ^= (u << 13) | (u >>> 19);
    u = (x4 + x7) | 0; x5 ^= (u << 18) | (u >>> 14);
    u = (x10 + x9) | 0; x11 ^= (u << 7) | (u >>> 25);
    u = (x11 + x10) | 0; x8 ^= (u << 9) | (u >>> 23);
    u = (x8 + x11) | 0; x9 ^= (u << 13) | (u >>> 19);
    u = (x9 + x8) | 0; x10 ^= (u << 18) | (u >>> 14);
    u = (x15 + x14) | 0; x12 ^= (u << 7) | (u >>> 25);
    u = (x12 + x15) | 0; x13 ^= (u << 9) | (u >>> 23);
    u = (x13 + x12) | 0; x14 ^= (u << 13) | (u >>> 19);
    u = (x14 + x13) | 0; x15 ^= (u << 18) | (u >>> 14);
  }
  return Uint32Array.of(x0, x5, x10, x15, x6, x7, x8, x9);
}

/** HSalsa20 output as 32 bytes (NaCl crypto_core_hsalsa20), used for crypto_box_beforenm. */
export function hsalsa20Bytes(key: Uint8Array, nonce16: Uint8Array): Uint8Array {
  checkSeedNonce(key, new Uint8Array(24));
  if (!(nonce16 instanceof Uint8Array) || nonce16.length !== 16) {
    throw new SecAggError('malformed-message', 'HSalsa20 nonce must be 16 bytes');
  }
  const w = hsalsa20(key, nonce16);
  const out = new Uint8Array(32);
  const view = new DataView(out.buffer);
  for (let i = 0; i < 8; i++) view.setUint32(4 * i, w[i], true);
  return out;
}

/** How the keystream words are combined with the target vector. */
type Combine = 'set' | 'add' | 'sub';

/**
 * Salsa20/20 over the HSalsa20 subkey, writing/adding/subtracting 16 words per block into `target`.
 * Uint32Array stores reduce modulo 2^32, which is exactly the Z_2^32 arithmetic the masks need.
 */
function salsa20Words(k: Uint32Array, nonce: Uint8Array, target: Uint32Array, mode: Combine): void {
  const j0 = SIGMA0, j1 = k[0], j2 = k[1], j3 = k[2], j4 = k[3], j5 = SIGMA1;
  const j6 = le32(nonce, 16), j7 = le32(nonce, 20);
  const j10 = SIGMA2, j11 = k[4], j12 = k[5], j13 = k[6], j14 = k[7], j15 = SIGMA3;
  let ctrLo = 0, ctrHi = 0;
  const n = target.length;
  const block = new Int32Array(16);
  for (let pos = 0; pos < n; pos += 16) {
    const j8 = ctrLo, j9 = ctrHi;
    let x0 = j0, x1 = j1, x2 = j2, x3 = j3, x4 = j4, x5 = j5, x6 = j6, x7 = j7;
    let x8 = j8, x9 = j9, x10 = j10, x11 = j11, x12 = j12, x13 = j13, x14 = j14, x15 = j15;
    let u: number;
    for (let i = 0; i < 20; i += 2) {
      u = (x0 + x12) | 0; x4 ^= (u << 7) | (u >>> 25);
      u = (x4 + x0) | 0; x8 ^= (u << 9) | (u >>> 23);
      u = (x8 + x4) | 0; x12 ^= (u << 13) | (u >>> 19);
      u = (x12 + x8) | 0; x0 ^= (u << 18) | (u >>> 14);
      u = (x5 + x1) | 0; x9 ^= (u << 7) | (u >>> 25);
      u = (x9 + x5) | 0; x13 ^= (u << 9) | (u >>> 23);
      u = (x13 + x9) | 0; x1 ^= (u << 13) | (u >>> 19);
      u = (x1 + x13) | 0; x5 ^= (u << 18) | (u >>> 14);
      u = (x10 + x6) | 0; x14 ^= (u << 7) | (u >>> 25);
      u = (x14 + x10) | 0; x2 ^= (u << 9) | (u >>> 23);
      u = (x2 + x14) | 0; x6 ^= (u << 13) | (u >>> 19);
      u = (x6 + x2) | 0; x10 ^= (u << 18) | (u >>> 14);
      u = (x15 + x11) | 0; x3 ^= (u << 7) | (u >>> 25);
      u = (x3 + x15) | 0; x7 ^= (u << 9) | (u >>> 23);
      u = (x7 + x3) | 0; x11 ^= (u << 13) | (u >>> 19);
      u = (x11 + x7) | 0; x15 ^= (u << 18) | (u >>> 14);
      u = (x0 + x3) | 0; x1 ^= (u << 7) | (u >>> 25);
      u = (x1 + x0) | 0; x2 ^= (u << 9) | (u >>> 23);
      u = (x2 + x1) | 0; x3 ^= (u << 13) | (u >>> 19);
      u = (x3 + x2) | 0; x0 ^= (u << 18) | (u >>> 14);
      u = (x5 + x4) | 0; x6 ^= (u << 7) | (u >>> 25);
      u = (x6 + x5) | 0; x7 ^= (u << 9) | (u >>> 23);
      u = (x7 + x6) | 0; x4 ^= (u << 13) | (u >>> 19);
      u = (x4 + x7) | 0; x5 ^= (u << 18) | (u >>> 14);
      u = (x10 + x9) | 0; x11 ^= (u << 7) | (u >>> 25);
      u = (x11 + x10) | 0; x8 ^= (u << 9) | (u >>> 23);
      u = (x8 + x11) | 0; x9 ^= (u << 13) | (u >>> 19);
      u = (x9 + x8) | 0; x10 ^= (u << 18) | (u >>> 14);
      u = (x15 + x14) | 0; x12 ^= (u << 7) | (u >>> 25);
      u = (x12 + x15) | 0; x13 ^= (u << 9) | (u >>> 23);
      u = (x13 + x12) | 0; x14 ^= (u << 13) | (u >>> 19);
      u = (x14 + x13) | 0; x15 ^= (u << 18) | (u >>> 14);
    }
    x0 = (x0 + j0) | 0; x1 = (x1 + j1) | 0; x2 = (x2 + j2) | 0; x3 = (x3 + j3) | 0;
    x4 = (x4 + j4) | 0; x5 = (x5 + j5) | 0; x6 = (x6 + j6) | 0; x7 = (x7 + j7) | 0;
    x8 = (x8 + j8) | 0; x9 = (x9 + j9) | 0; x10 = (x10 + j10) | 0; x11 = (x11 + j11) | 0;
    x12 = (x12 + j12) | 0; x13 = (x13 + j13) | 0; x14 = (x14 + j14) | 0; x15 = (x15 + j15) | 0;
    if (pos + 16 <= n && mode !== 'set') {
      // Full block straight into the target: subtracting is adding the negation (mod 2^32).
      if (mode === 'sub') {
        x0 = -x0; x1 = -x1; x2 = -x2; x3 = -x3; x4 = -x4; x5 = -x5; x6 = -x6; x7 = -x7;
        x8 = -x8; x9 = -x9; x10 = -x10; x11 = -x11; x12 = -x12; x13 = -x13; x14 = -x14; x15 = -x15;
      }
      target[pos] += x0; target[pos + 1] += x1; target[pos + 2] += x2; target[pos + 3] += x3;
      target[pos + 4] += x4; target[pos + 5] += x5; target[pos + 6] += x6; target[pos + 7] += x7;
      target[pos + 8] += x8; target[pos + 9] += x9; target[pos + 10] += x10; target[pos + 11] += x11;
      target[pos + 12] += x12; target[pos + 13] += x13; target[pos + 14] += x14; target[pos + 15] += x15;
    } else {
      block[0] = x0; block[1] = x1; block[2] = x2; block[3] = x3; block[4] = x4; block[5] = x5; block[6] = x6;
      block[7] = x7; block[8] = x8; block[9] = x9; block[10] = x10; block[11] = x11; block[12] = x12;
      block[13] = x13; block[14] = x14; block[15] = x15;
      const m = Math.min(16, n - pos);
      if (mode === 'add') for (let w = 0; w < m; w++) target[pos + w] += block[w];
      else if (mode === 'sub') for (let w = 0; w < m; w++) target[pos + w] -= block[w];
      else for (let w = 0; w < m; w++) target[pos + w] = block[w];
    }
    ctrLo = (ctrLo + 1) | 0;
    if (ctrLo === 0) ctrHi = (ctrHi + 1) | 0;
  }
}

function checkSeedNonce(seed: Uint8Array, nonce: Uint8Array): void {
  if (!(seed instanceof Uint8Array) || seed.length !== 32) {
    throw new SecAggError('malformed-message', `keystream seed must be 32 bytes, got ${seed?.length}`);
  }
  if (!(nonce instanceof Uint8Array) || nonce.length !== 24) {
    throw new SecAggError('malformed-message', `keystream nonce must be 24 bytes, got ${nonce?.length}`);
  }
}

/** The first `length` 32-bit little-endian words of XSalsa20(seed, nonce). */
export function keystreamWords(seed: Uint8Array, nonce: Uint8Array, length: number): Uint32Array {
  checkSeedNonce(seed, nonce);
  const out = new Uint32Array(length);
  const reader = sodiumKeystream(seed, nonce);
  if (reader) {
    const bytes = new Uint8Array(out.buffer);
    for (let pos = 0; pos < bytes.length; pos += 4 * CHUNK_WORDS) reader.read(bytes.subarray(pos, pos + 4 * CHUNK_WORDS));
    reader.close();
  } else {
    salsa20Words(hsalsa20(seed, nonce.subarray(0, 16)), nonce, out, 'set');
  }
  return out;
}

/** One mask to apply: + or - XSalsa20(seed, nonce). */
export interface MaskTerm {
  readonly seed: Uint8Array;
  readonly nonce: Uint8Array;
  readonly sign: 1 | -1;
}

/**
 * target <- target + sum_t sign_t * XSalsa20(seed_t, nonce_t) (mod 2^32), without allocating any mask.
 * This is how a site's self mask and pairwise masks (+ for i<j, - for i>j) are applied, and how the coordinator
 * removes them. With libsodium, chunk-major: each 64 KB chunk of the target is copied into the SIMD folder once,
 * every term's next keystream chunk is generated into the folder and added (u32-simd.ts), and the chunk is copied
 * back, so the target crosses main memory once however many terms there are.
 */
export function applyKeystreams(target: Uint32Array, terms: readonly MaskTerm[]): void {
  for (const t of terms) checkSeedNonce(t.seed, t.nonce);
  const readers = terms.map((t) => sodiumKeystream(t.seed, t.nonce));
  if (readers.some((r) => r === null)) {
    for (const t of terms) salsa20Words(hsalsa20(t.seed, t.nonce.subarray(0, 16)), t.nonce, target, t.sign === 1 ? 'add' : 'sub');
    return;
  }
  const f = u32Folder();
  for (let pos = 0; pos < target.length; pos += CHUNK_WORDS) {
    const m = Math.min(CHUNK_WORDS, target.length - pos);
    f.acc.set(target.subarray(pos, pos + m));
    for (let i = 0; i < terms.length; i++) {
      readers[i]!.read(f.srcBytes.subarray(0, 4 * m));
      f.fold(m, terms[i].sign);
    }
    target.set(f.acc.subarray(0, m), pos);
  }
  for (const r of readers) r!.close();
}

/** target <- target + sign * XSalsa20(seed, nonce) (mod 2^32): `applyKeystreams` with one term. */
export function applyKeystream(target: Uint32Array, seed: Uint8Array, nonce: Uint8Array, sign: 1 | -1): void {
  applyKeystreams(target, [{ seed, nonce, sign }]);
}

/** The pure-JS path of `applyKeystream`, whatever backend is loaded (tests compare the two). */
export function applyKeystreamJs(target: Uint32Array, seed: Uint8Array, nonce: Uint8Array, sign: 1 | -1): void {
  checkSeedNonce(seed, nonce);
  salsa20Words(hsalsa20(seed, nonce.subarray(0, 16)), nonce, target, sign === 1 ? 'add' : 'sub');
}
