import { describe, expect, it } from 'vitest';
import { SecAggError } from './errors.ts';
import type { MaskedVectorRes, ShareKeysIns } from './messages.ts';
import { instructionFromWire, instructionToWire, maskedVectorBytes, maskedVectorFromBytes, replyFromWire, replyToWire } from './wire-json.ts';

const keys = { siteId: 'a', maskPublicKey: new Uint8Array(32).fill(1), sharePublicKey: new Uint8Array(32).fill(2), signature: new Uint8Array(64).fill(3) };

describe('secagg wire JSON', () => {
  it('round-trips an instruction with byte fields through JSON text', () => {
    const ins: ShareKeysIns = { type: 'secagg/share-keys', version: 1, roundId: 'r1', keys: [keys] };
    const text = JSON.stringify(instructionToWire(ins));
    expect(text).toContain('$b64');
    expect(instructionFromWire(JSON.parse(text))).toEqual(ins);
  });

  it('sends a masked vector out of band, little-endian, and needs it back to decode the reply', () => {
    const masked = Uint32Array.of(1, 0xffffffff, 0x01020304);
    const reply: MaskedVectorRes = { type: 'secagg/masked-vector', version: 1, roundId: 'r1', siteId: 'a', masked };
    const { json, masked: bytes } = replyToWire(reply);
    expect(json).not.toHaveProperty('masked');
    expect(Array.from(bytes!.subarray(8, 12))).toEqual([4, 3, 2, 1]);
    expect(replyFromWire(JSON.parse(JSON.stringify(json)), bytes)).toEqual(reply);
    expect(() => replyFromWire(json, null)).toThrow(SecAggError);
    expect(maskedVectorFromBytes(maskedVectorBytes(masked))).toEqual(masked);
  });

  it('refuses malformed input with a typed error', () => {
    expect(() => instructionFromWire({ type: 'secagg/share-keys', version: 1, roundId: 'r', keys: [{ ...keys, maskPublicKey: { $b64: '!!' } }] })).toThrow(SecAggError);
    expect(() => instructionFromWire({ type: 'secagg/share-keys', version: 1, roundId: 'r', keys: [{ ...keys, maskPublicKey: { $b64: 'AAAA' } }] })).toThrow(/32 bytes/);
    let deep: unknown = 1;
    for (let i = 0; i < 20; i++) deep = [deep];
    expect(() => instructionFromWire({ type: 'secagg/setup', x: deep })).toThrow(/nested/);
    expect(() => maskedVectorFromBytes(new Uint8Array(5))).toThrow(SecAggError);
    expect(() => replyFromWire({ type: 'secagg/survivors-signature' }, new Uint8Array(4))).toThrow(SecAggError);
  });
});
