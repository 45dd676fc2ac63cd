import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { applyKeystream, keystreamWords } from './keystream.ts';
import { SecAggError } from './errors.ts';

type CryptoStream = (c: Uint8Array, cpos: number, d: number, n: Uint8Array, k: Uint8Array) => number;
const cryptoStream = (nacl as unknown as { lowlevel: { crypto_stream: CryptoStream } }).lowlevel.crypto_stream;

function seedOf(byte: number): Uint8Array {
  return new Uint8Array(32).fill(byte);
}

describe('XSalsa20 keystream words', () => {
  it('equals tweetnacl crypto_stream byte for byte (including a partial last block)', () => {
    const seed = nacl.randomBytes(32);
    const nonce = nacl.randomBytes(24);
    const words = 16 * 70 + 5;
    const ref = new Uint8Array(words * 4);
    cryptoStream(ref, 0, ref.length, nonce, seed);
    const got = new Uint8Array(keystreamWords(seed, nonce, words).buffer);
    expect(Buffer.from(got).equals(Buffer.from(ref))).toBe(true);
  });

  it('is deterministic in (seed, nonce)', () => {
    const nonce = nacl.randomBytes(24);
    expect(keystreamWords(seedOf(7), nonce, 100)).toEqual(keystreamWords(seedOf(7), nonce, 100));
  });

  it('differs for a one-bit change of seed or nonce, with about half the bits flipped', () => {
    const nonce = new Uint8Array(24);
    const a = keystreamWords(seedOf(1), nonce, 4096);
    const seed2 = seedOf(1);
    seed2[31] ^= 1;
    const b = keystreamWords(seed2, nonce, 4096);
    const nonce2 = new Uint8Array(24);
    nonce2[0] = 1;
    const c = keystreamWords(seedOf(1), nonce2, 4096);
    for (const other of [b, c]) {
      let flipped = 0;
      for (let i = 0; i < a.length; i++) {
        let x = (a[i] ^ other[i]) >>> 0;
        while (x) {
          flipped += x & 1;
          x >>>= 1;
        }
      }
      const frac = flipped / (a.length * 32);
      expect(frac).toBeGreaterThan(0.48);
      expect(frac).toBeLessThan(0.52);
    }
  });

  it('looks uniform: mean of words near 2^31, no word repeated in a long run', () => {
    const w = keystreamWords(nacl.randomBytes(32), nacl.randomBytes(24), 1 << 15);
    let mean = 0;
    for (const x of w) mean += x / w.length;
    expect(Math.abs(mean / 2 ** 31 - 1)).toBeLessThan(0.02);
    expect(new Set(w).size).toBeGreaterThan(w.length - 5);
  });

  it('add then subtract restores the target exactly (mod 2^32 arithmetic)', () => {
    const seed = nacl.randomBytes(32);
    const nonce = nacl.randomBytes(24);
    const x = Uint32Array.from({ length: 333 }, (_, i) => (i * 2654435761) >>> 0);
    const y = x.slice();
    applyKeystream(y, seed, nonce, 1);
    expect(y).not.toEqual(x);
    applyKeystream(y, seed, nonce, -1);
    expect(y).toEqual(x);
  });

  it('refuses a seed that is not 32 bytes', () => {
    expect(() => keystreamWords(new Uint8Array(16), new Uint8Array(24), 4)).toThrow(SecAggError);
  });
});
