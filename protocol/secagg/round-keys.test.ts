import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { SecAggError } from './errors.ts';
import { generateRoundKeyPairs, signRoundKeys, verifyRoundKeys } from './round-keys.ts';
import { combineShares, openShareBundle, sealShareBundle, splitSecret } from './share-box.ts';
import { combine } from 'shamir-secret-sharing';

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return (e as SecAggError).code;
  }
  return undefined;
}

describe('signed round keys', () => {
  const alice = nacl.sign.keyPair();
  const enrolled = new Map([['alice', alice.publicKey]]);

  it('verify against the enrolled identity', () => {
    const signed = signRoundKeys('r1', 'alice', generateRoundKeyPairs(), alice.secretKey);
    expect(() => verifyRoundKeys('r1', signed, enrolled)).not.toThrow();
  });

  it('a swapped mask or share key, another round, or another signer is bad-signature', () => {
    const signed = signRoundKeys('r1', 'alice', generateRoundKeyPairs(), alice.secretKey);
    const attacker = generateRoundKeyPairs();
    expect(codeOf(() => verifyRoundKeys('r1', { ...signed, maskPublicKey: attacker.mask.publicKey }, enrolled))).toBe('bad-signature');
    expect(codeOf(() => verifyRoundKeys('r1', { ...signed, sharePublicKey: attacker.share.publicKey }, enrolled))).toBe('bad-signature');
    expect(codeOf(() => verifyRoundKeys('r2', signed, enrolled))).toBe('bad-signature');
    const forged = signRoundKeys('r1', 'alice', attacker, nacl.sign.keyPair().secretKey);
    expect(codeOf(() => verifyRoundKeys('r1', forged, enrolled))).toBe('bad-signature');
  });

  it('an unenrolled site is unknown-site', () => {
    const bob = nacl.sign.keyPair();
    const signed = signRoundKeys('r1', 'bob', generateRoundKeyPairs(), bob.secretKey);
    expect(codeOf(() => verifyRoundKeys('r1', signed, enrolled))).toBe('unknown-site');
  });
});

describe('Shamir shares sealed site to site', () => {
  it('t of k shares reconstruct; t-1 are refused, and raw interpolation of t-1 gives a different value', async () => {
    const secret = nacl.randomBytes(32);
    const shares = await splitSecret(secret, 7, 5);
    expect(await combineShares(shares.slice(2), 5)).toEqual(secret);
    await expect(combineShares(shares.slice(0, 4), 5)).rejects.toMatchObject({ code: 'below-threshold' });
    for (let drop = 0; drop < 4; drop++) {
      const fewer = shares.slice(0, 4).filter((_, i) => i !== drop).concat(shares[6]);
      expect(await combine(fewer.slice(0, 4))).not.toEqual(secret);
    }
  });

  it('box opens only for the addressed recipient, round and sender', () => {
    const a = nacl.box.keyPair();
    const b = nacl.box.keyPair();
    const c = nacl.box.keyPair();
    const bundle = { roundId: 'r', from: 'a', to: 'b', selfMaskSeedShare: nacl.randomBytes(33), maskKeyShare: nacl.randomBytes(33) };
    const ct = sealShareBundle(bundle, a.secretKey, b.publicKey);
    expect(openShareBundle(ct, b.secretKey, a.publicKey, { roundId: 'r', from: 'a', to: 'b' })).toEqual(bundle);
    expect(() => openShareBundle(ct, c.secretKey, a.publicKey, { roundId: 'r', from: 'a', to: 'c' })).toThrow(/authenticate/);
    expect(() => openShareBundle(ct, b.secretKey, a.publicKey, { roundId: 'r2', from: 'a', to: 'b' })).toThrow(SecAggError);
    const tampered = ct.slice();
    tampered[40] ^= 1;
    expect(() => openShareBundle(tampered, b.secretKey, a.publicKey, { roundId: 'r', from: 'a', to: 'b' })).toThrow(SecAggError);
  });
});
