/**
 * Runtime schemas of the secagg stage messages (STYLE.md habit 1: validate untrusted input before use, on receive
 * and on send). `parseSecAggInstruction` / `parseSecAggReply` turn an untrusted decoded object into a typed
 * message or throw `SecAggError('malformed-message')` naming the first problem. Binary fields must already be
 * typed arrays (the wire codec turns socket.io Buffers into Uint8Array/Uint32Array views).
 */
import { z } from 'zod';
import { describeFirstIssue } from '../common/index.ts';
import { SecAggError } from './errors.ts';
import type { SecAggInstruction, SecAggReply } from './messages.ts';

const id = z.string().min(1).max(256);
const bytes = (len?: number) =>
  len === undefined
    ? z.instanceof(Uint8Array)
    : z.instanceof(Uint8Array).refine((b) => b.length === len, { message: `must be ${len} bytes` });
const version = z.literal(1);
const siteList = z.array(id).max(100_000);

const signedKeys = {
  siteId: id,
  maskPublicKey: bytes(32),
  sharePublicKey: bytes(32),
  signature: bytes(64),
};

const setupIns = z.object({
  type: z.literal('secagg/setup'),
  version,
  config: z.object({
    roundId: id,
    siteIds: siteList,
    degree: z.number().int(),
    threshold: z.number().int(),
    quant: z.object({ clip: z.number(), scaleBits: z.number().int() }),
    vectorLength: z.number().int().positive(),
    roundSeed: bytes(32),
  }),
});
const shareKeysIns = z.object({
  type: z.literal('secagg/share-keys'),
  version,
  roundId: id,
  keys: z.array(z.object(signedKeys)).max(255),
});
const collectIns = z.object({
  type: z.literal('secagg/collect-masked-vectors'),
  version,
  roundId: id,
  ciphertexts: z.array(z.object({ from: id, ciphertext: bytes() })).max(255),
});
const consistencyIns = z.object({
  type: z.literal('secagg/consistency-check'),
  version,
  roundId: id,
  survivors: siteList,
  dropped: siteList,
});
const unmaskIns = z.object({
  type: z.literal('secagg/unmask'),
  version,
  roundId: id,
  survivors: siteList,
  dropped: siteList,
  signatures: z.array(z.object({ siteId: id, signature: bytes(64) })).max(100_000),
});

const advertiseRes = z.object({ type: z.literal('secagg/advertise-keys'), version, roundId: id, ...signedKeys });
const sharesRes = z.object({
  type: z.literal('secagg/encrypted-shares'),
  version,
  roundId: id,
  siteId: id,
  shares: z.array(z.object({ to: id, ciphertext: bytes() })).max(255),
});
const maskedRes = z.object({
  type: z.literal('secagg/masked-vector'),
  version,
  roundId: id,
  siteId: id,
  masked: z.instanceof(Uint32Array),
});
const survivorsRes = z.object({
  type: z.literal('secagg/survivors-signature'),
  version,
  roundId: id,
  siteId: id,
  signature: bytes(64),
});
const revealed = z.array(z.object({ of: id, share: bytes() })).max(255);
const unmaskRes = z.object({
  type: z.literal('secagg/unmask-shares'),
  version,
  roundId: id,
  siteId: id,
  selfMaskShares: revealed,
  maskKeyShares: revealed,
});

export const secAggInstructionSchema = z.discriminatedUnion('type', [
  setupIns,
  shareKeysIns,
  collectIns,
  consistencyIns,
  unmaskIns,
]);
export const secAggReplySchema = z.discriminatedUnion('type', [advertiseRes, sharesRes, maskedRes, survivorsRes, unmaskRes]);

/** Validates an untrusted coordinator -> site message. */
export function parseSecAggInstruction(input: unknown): SecAggInstruction {
  const r = secAggInstructionSchema.safeParse(input);
  if (!r.success) throw new SecAggError('malformed-message', `bad secagg instruction: ${describeFirstIssue(r.error, { none: 'invalid message' })}`);
  return r.data as SecAggInstruction;
}

/** Validates an untrusted site -> coordinator message. */
export function parseSecAggReply(input: unknown): SecAggReply {
  const r = secAggReplySchema.safeParse(input);
  if (!r.success) throw new SecAggError('malformed-message', `bad secagg reply: ${describeFirstIssue(r.error, { none: 'invalid message' })}`);
  return r.data as SecAggReply;
}
