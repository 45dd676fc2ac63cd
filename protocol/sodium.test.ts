import { execFileSync } from 'node:child_process';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { applyKeystream, applyKeystreamJs, applyKeystreams, keystreamWords } from './secagg/keystream.ts';
import { SecureSession } from './secure-session.ts';
import { sodiumSecretbox, sodiumSecretboxOpen, symmetricBackend } from './sodium.ts';

type CryptoStream = (c: Uint8Array, cpos: number, d: number, n: Uint8Array, k: Uint8Array) => number;
const cryptoStream = (nacl as unknown as { lowlevel: { crypto_stream: CryptoStream } }).lowlevel.crypto_stream;

const prebuilt = process.platform === 'linux' && process.arch === 'x64' && process.env.FEDSFDA_CRYPTO !== 'js';

describe('libsodium acceleration', () => {
  it.runIf(prebuilt)('is loaded on linux-x64 (sodium-native ships a prebuilt binary)', () => {
    expect(symmetricBackend().name).toBe('libsodium');
  });

  it('FEDSFDA_CRYPTO=js forces the pure-JS path', () => {
    const out = execFileSync(
      process.execPath,
      ['--import', 'tsx', '-e', "import('./protocol/sodium.ts').then((m) => console.log(JSON.stringify(m.symmetricBackend())))"],
      { env: { ...process.env, FEDSFDA_CRYPTO: 'js' }, encoding: 'utf8' },
    );
    expect(JSON.parse(out.trim())).toEqual({ name: 'js', reason: 'FEDSFDA_CRYPTO=js' });
  });

  it('keystream words equal tweetnacl crypto_stream across chunk boundaries', () => {
    const seed = nacl.randomBytes(32);
    const nonce = nacl.randomBytes(24);
    const words = 2 * 16_384 + 37;
    const ref = new Uint8Array(words * 4);
    cryptoStream(ref, 0, ref.length, nonce, seed);
    expect(Buffer.from(keystreamWords(seed, nonce, words).buffer).equals(Buffer.from(ref))).toBe(true);
  });

  it.each([0, 1, 15, 16, 17, 16_384, 16_385, 40_001])('applyKeystream equals the JS loop for %i words, both signs', (len) => {
    const seed = nacl.randomBytes(32);
    const nonce = nacl.randomBytes(24);
    const base = new Uint32Array(nacl.randomBytes(len * 4).buffer);
    for (const sign of [1, -1] as const) {
      const fast = base.slice();
      const js = base.slice();
      applyKeystream(fast, seed, nonce, sign);
      applyKeystreamJs(js, seed, nonce, sign);
      expect(Buffer.from(fast.buffer).equals(Buffer.from(js.buffer))).toBe(true);
    }
    // + then - cancels exactly (mod 2^32)
    const round = base.slice();
    applyKeystream(round, seed, nonce, 1);
    applyKeystream(round, seed, nonce, -1);
    expect(round).toEqual(base);
  });

  it('several terms folded chunk by chunk equal the terms applied one after another in JS', () => {
    const len = 3 * 16_384 + 11;
    const terms = Array.from({ length: 5 }, (_, i) => ({
      seed: nacl.randomBytes(32),
      nonce: nacl.randomBytes(24),
      sign: (i % 2 === 0 ? 1 : -1) as 1 | -1,
    }));
    const base = new Uint32Array(nacl.randomBytes(len * 4).buffer);
    const fused = base.slice();
    applyKeystreams(fused, terms);
    const js = base.slice();
    for (const t of terms) applyKeystreamJs(js, t.seed, t.nonce, t.sign);
    expect(Buffer.from(fused.buffer).equals(Buffer.from(js.buffer))).toBe(true);
    expect(fused).not.toEqual(base);
  });

  it.runIf(prebuilt)('secretbox bytes equal tweetnacl, and each opens the other; a flipped bit is refused', () => {
    const key = nacl.randomBytes(32);
    const nonce = nacl.randomBytes(24);
    const msg = nacl.randomBytes(100_003);
    const fast = sodiumSecretbox(msg, nonce, key)!;
    expect(Buffer.from(fast).equals(Buffer.from(nacl.secretbox(msg, nonce, key)))).toBe(true);
    expect(nacl.secretbox.open(fast, nonce, key)).toEqual(msg);
    expect(sodiumSecretboxOpen(nacl.secretbox(msg, nonce, key), nonce, key)).toEqual(msg);
    fast[50] ^= 1;
    expect(sodiumSecretboxOpen(fast, nonce, key)).toBe(false);
  });

  it('session envelopes still refuse tampering through the accelerated path', () => {
    const key = nacl.randomBytes(32);
    const site = new SecureSession(key, 'site');
    const coord = new SecureSession(key, 'coordinator');
    const env = site.seal(new Uint8Array([1, 2, 3]));
    expect(coord.open(env)).toEqual(new Uint8Array([1, 2, 3]));
    const env2 = site.seal(new Uint8Array([4, 5, 6]));
    env2[env2.length - 1] ^= 0x80;
    expect(() => coord.open(env2)).toThrow(/authentication/);
  });
});
