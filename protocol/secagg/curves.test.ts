import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { boxBefore, ed25519Sign, ed25519Verify, x25519, x25519Base, x25519KeyPair } from './curves.ts';
import { SecAggError } from './errors.ts';

describe('libsodium/OpenSSL curves agree with tweetnacl', () => {
  it('x25519 equals nacl.scalarMult and boxBefore equals nacl.box.before', () => {
    for (let i = 0; i < 5; i++) {
      const a = nacl.box.keyPair();
      const b = nacl.box.keyPair();
      expect(x25519(a.secretKey, b.publicKey)).toEqual(nacl.scalarMult(a.secretKey, b.publicKey));
      expect(boxBefore(b.publicKey, a.secretKey)).toEqual(nacl.box.before(b.publicKey, a.secretKey));
    }
  });

  it('a box sealed by tweetnacl opens with boxBefore', () => {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    const nonce = nacl.randomBytes(24);
    const ct = nacl.box(Uint8Array.of(1, 2, 3), nonce, b.publicKey, a.secretKey);
    expect(nacl.secretbox.open(ct, nonce, boxBefore(a.publicKey, b.secretKey))).toEqual(Uint8Array.of(1, 2, 3));
  });

  it('ed25519Verify accepts tweetnacl signatures and rejects altered ones', () => {
    const kp = nacl.sign.keyPair();
    const msg = nacl.randomBytes(100);
    const sig = nacl.sign.detached(msg, kp.secretKey);
    expect(ed25519Verify(msg, sig, kp.publicKey)).toBe(true);
    const bad = sig.slice();
    bad[3] ^= 1;
    expect(ed25519Verify(msg, bad, kp.publicKey)).toBe(false);
    expect(ed25519Verify(msg, sig, nacl.sign.keyPair().publicKey)).toBe(false);
    expect(ed25519Verify(msg, sig.subarray(0, 10), kp.publicKey)).toBe(false);
  });

  it('refuses a low-order public key (all-zero point and the order-8 point u=1)', () => {
    expect(() => x25519(nacl.box.keyPair().secretKey, new Uint8Array(32))).toThrow(SecAggError);
    const one = new Uint8Array(32);
    one[0] = 1;
    expect(() => x25519(nacl.box.keyPair().secretKey, one)).toThrow(SecAggError);
  });

  it('key pairs, base-point multiplication and signatures equal tweetnacl byte for byte', () => {
    const kp = x25519KeyPair();
    expect(kp.publicKey).toEqual(nacl.scalarMult.base(kp.secretKey));
    expect(x25519Base(kp.secretKey)).toEqual(nacl.box.keyPair.fromSecretKey(kp.secretKey).publicKey);
    const id = nacl.sign.keyPair();
    const msg = nacl.randomBytes(77);
    expect(ed25519Sign(msg, id.secretKey)).toEqual(nacl.sign.detached(msg, id.secretKey));
    expect(() => ed25519Sign(msg, id.secretKey.subarray(0, 32))).toThrow(SecAggError);
  });
});
