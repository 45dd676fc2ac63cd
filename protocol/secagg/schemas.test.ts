import { describe, expect, it } from 'vitest';
import { makeSimulatedSites, runSecAggRound } from './run-round.ts';
import type { SecAggInstruction, SecAggReply } from './messages.ts';
import { parseSecAggInstruction, parseSecAggReply } from './schemas.ts';

describe('secagg message schemas', () => {
  it('accept every message of a real round', async () => {
    const sites = makeSimulatedSites(4, () => Float32Array.of(0.1, 0.2));
    const replies: SecAggReply[] = [];
    const instructions: SecAggInstruction[] = [];
    await runSecAggRound(sites, {
      vectorLength: 2,
      quant: { clip: 1, scaleBits: 16 },
      onCoordinatorReceive: (m) => replies.push(m),
      tamper: (_to, ins) => {
        instructions.push(ins);
        return ins;
      },
    });
    expect(new Set(replies.map((r) => r.type)).size).toBe(5);
    expect(new Set(instructions.map((r) => r.type)).size).toBe(5);
    for (const r of replies) expect(parseSecAggReply(r)).toEqual(r);
    for (const i of instructions) expect(parseSecAggInstruction(i)).toEqual(i);
  });

  it('refuse malformed input with malformed-message naming the field', () => {
    expect(() => parseSecAggReply({ type: 'secagg/masked-vector', version: 1, roundId: 'r', siteId: 's', masked: [1, 2] })).toThrow(
      /masked/,
    );
    expect(() =>
      parseSecAggReply({ type: 'secagg/survivors-signature', version: 1, roundId: 'r', siteId: 's', signature: new Uint8Array(3) }),
    ).toThrow(/signature: must be 64 bytes/);
    expect(() => parseSecAggInstruction({ type: 'secagg/nope', version: 1 })).toThrow(expect.objectContaining({ code: 'malformed-message' }));
    expect(() => parseSecAggInstruction(null)).toThrow(expect.objectContaining({ code: 'malformed-message' }));
  });
});
