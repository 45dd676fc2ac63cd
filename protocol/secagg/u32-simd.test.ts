import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { CHUNK_WORDS, foldInto, jsU32Folder, u32Folder } from './u32-simd.ts';

function randomWords(n: number): Uint32Array {
  return new Uint32Array(nacl.randomBytes(4 * n).buffer);
}

describe('u32 fold (WebAssembly SIMD)', () => {
  it('runs the SIMD module on Node 20', () => {
    expect(u32Folder().simd).toBe(process.env.FEDSFDA_SIMD !== 'off');
  });

  it.each([0, 1, 3, 4, 5, CHUNK_WORDS - 1, CHUNK_WORDS, CHUNK_WORDS + 7, 3 * CHUNK_WORDS + 2])(
    'equals element-wise add/sub mod 2^32 and the JS folder for %i words',
    (n) => {
      const a = randomWords(n);
      const b = randomWords(n);
      for (const sign of [1, -1] as const) {
        const simd = a.slice();
        const js = a.slice();
        foldInto(simd, b, sign);
        foldInto(js, b, sign, jsU32Folder());
        const ref = a.map((x, i) => (sign === 1 ? x + b[i] : x - b[i]) >>> 0);
        expect(simd).toEqual(ref);
        expect(js).toEqual(ref);
      }
    },
  );

  it('wraps around at 2^32 in both directions', () => {
    const t = Uint32Array.of(0xffffffff, 0, 5, 0x80000000);
    foldInto(t, Uint32Array.of(1, 1, 0, 0x80000000), 1);
    expect(Array.from(t)).toEqual([0, 1, 5, 0]);
    foldInto(t, Uint32Array.of(1, 2, 6, 1), -1);
    expect(Array.from(t)).toEqual([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]);
  });

  it('refuses sources of another length', () => {
    expect(() => foldInto(new Uint32Array(4), new Uint32Array(5), 1)).toThrow(RangeError);
  });
});
