/**
 * Randomness for DP noise. Noise is only as private as its randomness is unpredictable, so every draw comes from a
 * ChaCha20 keystream (RFC 8439, node:crypto) — never Math.random or a small-state PRNG whose state an observer of
 * a few outputs could recover and then subtract the noise.
 * - `cryptoNoiseSource()` keys the stream from the OS CSPRNG: the mode for real runs.
 * - `seededNoiseSource(seed)` keys it from SHA-256 of a seed: reproducible, for tests and simulations only (a run
 *   whose seed is known has no privacy at all; the coordinator and sites log which mode they use).
 */
import { createCipheriv, createHash, randomBytes, type Cipher } from 'node:crypto';

export interface NoiseSource {
  /** 'crypto' for OS-keyed streams, 'seeded' for reproducible test streams. */
  readonly mode: 'crypto' | 'seeded';
  /** A uniform 32-bit unsigned integer. */
  nextUint32(): number;
  /** A uniform double in [0, 1) with 53 random bits. */
  nextDouble(): number;
  /** A uniform double in (0, 1) (never 0: safe under log). */
  nextOpenDouble(): number;
}

const BLOCK_WORDS = 4096; // 16 KiB of keystream per refill

class ChaChaNoiseSource implements NoiseSource {
  private readonly cipher: Cipher;
  private readonly zeros = new Uint8Array(BLOCK_WORDS * 4);
  private words = new Uint32Array(0);
  private pos = 0;

  constructor(
    readonly mode: 'crypto' | 'seeded',
    key: Uint8Array,
  ) {
    // node's chacha20 takes a 16-byte IV: 4-byte block counter (LE) + 12-byte nonce; a fresh key makes zero safe.
    this.cipher = createCipheriv('chacha20', key, new Uint8Array(16));
  }

  private refill(): void {
    const block = this.cipher.update(this.zeros);
    this.words = new Uint32Array(block.buffer, block.byteOffset, block.byteLength >>> 2);
    this.pos = 0;
  }

  nextUint32(): number {
    if (this.pos >= this.words.length) this.refill();
    return this.words[this.pos++];
  }

  nextDouble(): number {
    const hi = this.nextUint32() >>> 5; // 27 bits
    const lo = this.nextUint32() >>> 6; // 26 bits
    return (hi * 67108864 + lo) / 9007199254740992; // (hi * 2^26 + lo) / 2^53
  }

  nextOpenDouble(): number {
    for (;;) {
      const u = this.nextDouble();
      if (u > 0) return u;
    }
  }
}

/** A noise source keyed from the operating system's CSPRNG (real runs). */
export function cryptoNoiseSource(): NoiseSource {
  return new ChaChaNoiseSource('crypto', randomBytes(32));
}

/** A reproducible noise source for tests and simulations: ChaCha20 keyed by SHA-256("fedsfda/dp-noise/v1" || seed). */
export function seededNoiseSource(seed: number | string): NoiseSource {
  const key = createHash('sha256').update(`fedsfda/dp-noise/v1\0${String(seed)}`).digest();
  return new ChaChaNoiseSource('seeded', key);
}

/** A uniform integer in [0, n) without modulo bias (rejection on 53-bit doubles; n < 2^53). */
export function uniformInt(src: NoiseSource, n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > 2 ** 52) throw new RangeError(`uniformInt: n must be an integer in [1, 2^52], got ${n}`);
  if (n <= 2 ** 32) {
    const limit = 2 ** 32 - (2 ** 32 % n);
    for (;;) {
      const x = src.nextUint32();
      if (x < limit) return x % n;
    }
  }
  const limit = 2 ** 53 - (2 ** 53 % n);
  for (;;) {
    const x = Math.floor(src.nextDouble() * 2 ** 53);
    if (x < limit) return x % n;
  }
}
