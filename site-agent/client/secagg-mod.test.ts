import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { describe, expect, it } from 'vitest';
import { toBase64 } from '../../protocol/bytes.ts';
import type { MessageOf, SessionMessage } from '../../protocol/messages.ts';
import { makeSecAggConfig } from '../../protocol/secagg/config.ts';
import { instructionToWire } from '../../protocol/secagg/wire-json.ts';
import type { SecureChannel } from '../../protocol/secure-channel.ts';
import { PeerKeys } from './peer-keys.ts';
import { handleSecAggInstruction, SiteSecAggState, type SecAggSiteContext } from './secagg-mod.ts';
import { handleStatisticsInstruction, type StatisticsContext } from './statistics-handler.ts';

const me = nacl.sign.keyPair();
const b1 = nacl.sign.keyPair().publicKey;
const b2 = nacl.sign.keyPair().publicKey;
const c = nacl.sign.keyPair().publicKey;

function setupMessage(sessionId: string, enrolled: Record<string, Uint8Array>): MessageOf<'secaggIns'> {
  const config = makeSecAggConfig({ roundId: sessionId, siteIds: ['a', 'b', 'c'], vectorLength: 4, quant: { clip: 1, scaleBits: 16 } });
  return {
    v: 1,
    type: 'secaggIns',
    sessionId,
    stage: 'setup',
    instruction: instructionToWire({ type: 'secagg/setup', version: 1, config }),
    setup: {
      purpose: 'fit',
      round: 1,
      enrolled: Object.fromEntries(Object.entries(enrolled).map(([k, v]) => [k, toBase64(v)])),
      modelId: 'model-x',
      modelIncluded: false,
      fit: { config: { round: 1, localEpochs: 1, lr: 0.1 }, tensors: [], metrics: [], maxExamples: 10 },
    },
  };
}

async function send(state: SiteSecAggState, m: MessageOf<'secaggIns'>): Promise<MessageOf<'secaggRes'>['reply']> {
  const sent: SessionMessage[] = [];
  const ch = { isClosed: false, send: (x: SessionMessage) => sent.push(x) } as unknown as SecureChannel;
  const ctx: SecAggSiteContext = { siteId: 'a', identity: me, secagg: state, fit: () => new Promise(() => {}), onMasked: () => {} };
  await handleSecAggInstruction(ch, m, ctx);
  expect(sent).toHaveLength(1);
  return (sent[0] as MessageOf<'secaggRes'>).reply;
}

describe('site secure-aggregation middleware: whom the site trusts', () => {
  it('pins peer identity keys on first use and refuses a later change', async () => {
    const state = new SiteSecAggState();
    expect((await send(state, setupMessage('s1', { a: me.publicKey, b: b1, c }))).ok).toBe(true);
    const swapped = await send(state, setupMessage('s2', { a: me.publicKey, b: b2, c }));
    expect(swapped).toMatchObject({ ok: false, error: { code: 'secagg_refused' } });
    expect(!swapped.ok && swapped.error.reason).toMatch(/bad-signature.*"b"/);
  });

  it('keeps the keys it learned in its known-peers file: a restarted site still refuses a swapped key', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-peers-'));
    try {
      const file = join(dir, 'known-peers.json');
      const first = new PeerKeys(undefined, file);
      await first.load();
      expect((await send(new SiteSecAggState(first), setupMessage('s1', { a: me.publicKey, b: b1, c }))).ok).toBe(true);
      expect(JSON.parse(await readFile(file, 'utf8'))).toEqual({ v: 1, kind: 'fedsfda-known-peers', peers: { b: toBase64(b1), c: toBase64(c) } });
      const restarted = new PeerKeys(undefined, file);
      await restarted.load();
      const swapped = await send(new SiteSecAggState(restarted), setupMessage('s2', { a: me.publicKey, b: b2, c }));
      expect(!swapped.ok && swapped.error.reason).toMatch(/bad-signature.*"b"/);
      // A pinned key that contradicts the file is a configuration error, reported before anything runs.
      await expect(new PeerKeys(new Map([['b', b2]]), file).load()).rejects.toThrow(/differs from the pinned one/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('refuses a list with another key for the site itself, and unknown peers when peers are pinned', async () => {
    const wrongSelf = await send(new SiteSecAggState(), setupMessage('s1', { a: b2, b: b1, c }));
    expect(!wrongSelf.ok && wrongSelf.error.reason).toMatch(/another identity key for this site/);
    const strict = new SiteSecAggState(new PeerKeys(new Map([['b', b1]])));
    const unknown = await send(strict, setupMessage('s1', { a: me.publicKey, b: b1, c }));
    expect(!unknown.ok && unknown.error.reason).toMatch(/unknown-site.*"c"/);
  });

  it('answers a stage re-issued after a reconnect with the same reply, and refuses the same stage with other content', async () => {
    const state = new SiteSecAggState();
    const m = setupMessage('s1', { a: me.publicKey, b: b1, c });
    const first = await send(state, m);
    expect(first.ok).toBe(true);
    // The coordinator re-issues the identical setup on the site's new connection: the very same keys come back.
    expect(await send(state, { ...m, setup: { ...m.setup!, modelIncluded: true } })).toEqual(first);
    // The same stage with different content is not a re-issue: no second answer is computed.
    const other = setupMessage('s1', { a: me.publicKey, b: b1, c });
    const changed = { ...other, instruction: { ...other.instruction, extra: 1 } } as MessageOf<'secaggIns'>;
    const refused = await send(state, changed);
    expect(refused).toMatchObject({ ok: false, error: { code: 'secagg_refused' } });
    expect(!refused.ok && refused.error.reason).toMatch(/already answered for another instruction/);
  });

  it('refuses stages of a session it never set up', async () => {
    const m = setupMessage('s1', { a: me.publicKey, b: b1, c });
    const reply = await send(new SiteSecAggState(), {
      ...m,
      stage: 'share-keys',
      instruction: instructionToWire({ type: 'secagg/share-keys', version: 1, roundId: 's1', keys: [] }),
    });
    expect(!reply.ok && reply.error.reason).toMatch(/wrong-stage/);
  });

  it('answers a statistics request re-issued after a reconnect from the first computation (computed once)', async () => {
    const replies: MessageOf<'statsRes'>['reply'][] = [];
    const ch = { isClosed: false, send: (x: SessionMessage) => replies.push((x as MessageOf<'statsRes'>).reply) } as unknown as SecureChannel;
    let computed = 0;
    const ctx: StatisticsContext = {
      secagg: new SiteSecAggState(),
      statistics: async () => {
        computed++;
        return { counts: new Float32Array([1, 2, 3]) };
      },
      getModel: async () => [],
    };
    const m = { v: 1, type: 'statsIns', sessionId: 'st1', round: 1, name: 'class-histogram', config: {}, modelId: 'model-x', modelIncluded: true } as unknown as MessageOf<'statsIns'>;
    await Promise.all([handleStatisticsInstruction(ch, m, ctx), handleStatisticsInstruction(ch, m, ctx)]);
    await handleStatisticsInstruction(ch, m, ctx);
    expect(computed).toBe(1);
    expect(replies).toEqual(Array(3).fill({ ok: true, entries: [{ name: 'counts', length: 3 }] }));
    // Other statistics under the same session id are not a re-issue.
    await handleStatisticsInstruction(ch, { ...m, name: 'source-stats' }, ctx);
    expect(replies[3]).toMatchObject({ ok: false, error: { code: 'bad_request' } });
  });

  it('reads the model again when the first request lost its download with its connection', async () => {
    const replies: MessageOf<'statsRes'>['reply'][] = [];
    const ch = { isClosed: false, send: (x: SessionMessage) => replies.push((x as MessageOf<'statsRes'>).reply) } as unknown as SecureChannel;
    let downloads = 0;
    const ctx: StatisticsContext = {
      secagg: new SiteSecAggState(),
      statistics: async () => ({ counts: new Float32Array([1]) }),
      getModel: async () => {
        if (downloads++ === 0) throw new Error('closed: channel closed (remote)');
        return [];
      },
    };
    const m = { v: 1, type: 'statsIns', sessionId: 'st2', round: 1, name: 'class-histogram', config: {}, modelId: 'model-x', modelIncluded: true } as unknown as MessageOf<'statsIns'>;
    await handleStatisticsInstruction(ch, m, ctx); // its connection dropped mid-download: the reply goes nowhere useful
    await handleStatisticsInstruction(ch, m, ctx); // re-issued on the new connection
    expect(downloads).toBe(2);
    expect(replies.map((r) => r.ok)).toEqual([false, true]);
  });

  it('declines a statistics request as bad_request when its trainer has no statistics hook, without touching the model', async () => {
    const sent: SessionMessage[] = [];
    const ch = { isClosed: false, send: (x: SessionMessage) => sent.push(x) } as unknown as SecureChannel;
    let modelRequested = false;
    const ctx: StatisticsContext = {
      secagg: new SiteSecAggState(),
      statistics: undefined,
      getModel: () => {
        modelRequested = true;
        return new Promise(() => {});
      },
    };
    const m = { v: 1, type: 'statsIns', sessionId: 'st1', round: 1, name: 'source-stats', config: {}, modelId: 'model-x', modelIncluded: false } as unknown as MessageOf<'statsIns'>;
    await handleStatisticsInstruction(ch, m, ctx);
    expect(sent).toHaveLength(1);
    const reply = (sent[0] as MessageOf<'statsRes'>).reply;
    expect(reply.ok).toBe(false);
    expect(!reply.ok && reply.error.code).toBe('bad_request');
    expect(modelRequested).toBe(false);
  });
});
