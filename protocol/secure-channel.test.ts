import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { createMemoryTransportPair } from './memory-transport.ts';
import { SecureChannel, sealedPort } from './secure-channel.ts';
import { SecureSession } from './secure-session.ts';
import { TransferStore } from './transfer-store.ts';
import { PROTOCOL_VERSION, type SessionMessage } from './messages.ts';
import { ProtocolError, type ProtocolErrorCode } from './errors.ts';
import { toBase64 } from './bytes.ts';

function pair(opts: { chunkBytes?: number; coordTransfers?: TransferStore; maxTransferBytes?: number } = {}) {
  const key = nacl.randomBytes(32);
  const t = createMemoryTransportPair();
  const rejected: ProtocolErrorCode[] = [];
  const site = new SecureChannel(sealedPort(t.site), new SecureSession(key, 'site'), { chunkBytes: opts.chunkBytes ?? 1000 });
  const coord = new SecureChannel(sealedPort(t.coordinator), new SecureSession(key, 'coordinator'), {
    chunkBytes: opts.chunkBytes ?? 1000,
    ...(opts.coordTransfers ? { transfers: opts.coordTransfers } : {}),
    ...(opts.maxTransferBytes ? { maxTransferBytes: opts.maxTransferBytes } : {}),
    onReject: (e) => rejected.push(e.code),
  });
  return { t, site, coord, rejected, key };
}

function nextMessage(ch: SecureChannel): Promise<SessionMessage> {
  return new Promise((resolve) => {
    const off = ch.onMessage((m) => {
      off();
      resolve(m);
    });
  });
}

const randomBlob = (n: number): Uint8Array => nacl.randomBytes(n);

describe('SecureChannel', () => {
  it('carries validated messages both ways', async () => {
    const { site, coord } = pair();
    const got = nextMessage(coord);
    site.send({ v: PROTOCOL_VERSION, type: 'ready', siteId: 'site-a' });
    expect(await got).toEqual({ v: 1, type: 'ready', siteId: 'site-a' });
    expect(() => site.send({ v: PROTOCOL_VERSION, type: 'ready', siteId: '../x' } as SessionMessage)).toThrow(ProtocolError); // validated on send
    const back = nextMessage(site);
    coord.send({ v: PROTOCOL_VERSION, type: 'finish', reason: 'done', lastRound: 3 });
    expect(await back).toMatchObject({ type: 'finish', lastRound: 3 });
  });

  it('sends a blob in acknowledged chunks and reassembles it exactly', async () => {
    const { site, coord } = pair({ chunkBytes: 1000 });
    const blob = randomBlob(10_500);
    const received = coord.receiveBlob('update-1');
    const res = await site.sendBlob('update-1', blob);
    expect(res).toEqual({ chunksSent: 11, resumedFrom: 0 });
    expect(await received).toEqual(blob);
    // Empty blobs work too.
    const empty = coord.receiveBlob('empty');
    await site.sendBlob('empty', new Uint8Array(0));
    expect((await empty).length).toBe(0);
  });

  it('resumes an interrupted transfer from the first missing chunk on a new channel', async () => {
    const store = new TransferStore({ maxChunkBytes: 100_000 });
    const first = pair({ chunkBytes: 1000, coordTransfers: store });
    const blob = randomBlob(8_000);
    // Cut the connection once the receiver holds 3 chunks.
    let chunks = 0;
    const cut = new Promise<void>((resolve) => {
      first.t.coordinator.on('sealed', () => {
        if (++chunks === 4 /* transferStart + 3 chunks */) {
          first.t.site.disconnect();
          resolve();
        }
      });
    });
    const aborted = first.site.sendBlob('model-x', blob).catch((e: ProtocolError) => e.code);
    await cut;
    expect(await aborted).toBe('closed');
    const have = store.progress('model-x');
    expect(have).toBeGreaterThanOrEqual(3); // chunks already in flight when the link dropped may have landed
    expect(have).toBeLessThan(8);

    const second = pair({ chunkBytes: 1000, coordTransfers: store });
    const received = second.coord.receiveBlob('model-x');
    const res = await second.site.sendBlob('model-x', blob);
    expect(res).toEqual({ chunksSent: 8 - have, resumedFrom: have });
    expect(await received).toEqual(blob);
  });

  it('counts tampered, replayed and malformed envelopes without crashing, and keeps working', async () => {
    const { t, site, coord, rejected, key } = pair();
    const captured: Uint8Array[] = [];
    t.coordinator.on('sealed', (e) => captured.push(e as Uint8Array));
    const first = nextMessage(coord);
    site.send({ v: PROTOCOL_VERSION, type: 'ready', siteId: 'site-a' });
    await first;
    // Replay the captured envelope, flip a byte in a copy, send junk and a non-binary payload.
    const flipped = new Uint8Array(captured[0]);
    flipped[flipped.length - 1] ^= 1;
    t.site.send('sealed', captured[0]);
    t.site.send('sealed', flipped);
    t.site.send('sealed', new Uint8Array(3));
    t.site.send('sealed', 'text' as unknown as Uint8Array);
    // An authenticated message that violates the schema (sealed with the right key by a buggy peer).
    const rogue = new SecureSession(key, 'site');
    for (let i = 0; i < 10; i++) rogue.seal(new Uint8Array(1)); // skip counters `site` has used or will use below
    const json = new TextEncoder().encode(JSON.stringify({ v: 1, type: 'fitRes', round: -1 }));
    const body = new Uint8Array(4 + json.length);
    new DataView(body.buffer).setUint32(0, json.length, true);
    body.set(json, 4);
    t.site.send('sealed', rogue.seal(body));
    const forged = rogue.seal(body);
    forged[20] ^= 0x80;
    t.site.send('sealed', forged);
    const after = nextMessage(coord);
    site.send({ v: PROTOCOL_VERSION, type: 'error', error: { code: 'internal', reason: 'still alive' } });
    expect(await after).toMatchObject({ type: 'error' });
    // The flipped copy of a seen counter is refused by the replay window before any MAC work.
    expect(rejected).toEqual(['replay', 'replay', 'malformed', 'malformed', 'malformed', 'tampered']);
    expect(coord.stats.rejected).toEqual({ replay: 2, tampered: 1, malformed: 3 });
  });

  it('refuses a hostile transfer size before allocating, and out-of-order or wrong-length chunks', async () => {
    const { site, coord, rejected } = pair({ maxTransferBytes: 10_000 });
    const errors: string[] = [];
    site.onMessage((m) => m.type === 'error' && errors.push(m.error.reason));
    const digest = toBase64(nacl.hash(new Uint8Array(0)));
    site.send({ v: PROTOCOL_VERSION, type: 'transferStart', transferId: 't1', totalBytes: 2 ** 40, chunkBytes: 1000, chunkCount: 2 ** 30, digest });
    site.send({ v: PROTOCOL_VERSION, type: 'transferStart', transferId: 't2', totalBytes: 5000, chunkBytes: 1000, chunkCount: 3, digest });
    site.send({ v: PROTOCOL_VERSION, type: 'transferStart', transferId: 't3', totalBytes: 2000, chunkBytes: 1000, chunkCount: 2, digest });
    site.send({ v: PROTOCOL_VERSION, type: 'chunk', transferId: 't3', index: 1, data: new Uint8Array(1000) });
    site.send({ v: PROTOCOL_VERSION, type: 'chunk', transferId: 't3', index: 0, data: new Uint8Array(10) });
    site.send({ v: PROTOCOL_VERSION, type: 'chunk', transferId: 'nope', index: 0, data: new Uint8Array(10) });
    // Complete t3 with the wrong content: digest mismatch.
    const waiting = coord.receiveBlob('t3').catch((e: ProtocolError) => e.code);
    site.send({ v: PROTOCOL_VERSION, type: 'chunk', transferId: 't3', index: 0, data: new Uint8Array(1000) });
    site.send({ v: PROTOCOL_VERSION, type: 'chunk', transferId: 't3', index: 1, data: new Uint8Array(1000).fill(1) });
    expect(await waiting).toBe('digest_mismatch');
    expect(rejected).toEqual(['oversized', 'transfer_invalid', 'transfer_invalid', 'transfer_invalid', 'transfer_invalid', 'digest_mismatch']);
    await new Promise<void>((resolve) => {
      const check = site.onMessage(() => errors.length >= 6 && (check(), resolve()));
      if (errors.length >= 6) resolve();
    });
    expect(errors.length).toBe(6);
  });

  it('refuses transfers beyond the receive budget (many near-maximum announcements)', () => {
    const store = new TransferStore({ maxChunkBytes: 1000, maxTransferBytes: 10_000, maxBufferedBytes: 15_000 });
    const digest = toBase64(nacl.hash(new Uint8Array(0)));
    const start = (id: string) => store.start({ v: 1, type: 'transferStart', transferId: id, totalBytes: 9_000, chunkBytes: 1000, chunkCount: 9, digest });
    expect(start('a')).toBe(0);
    expect(() => start('b')).toThrow(/receive budget/);
    expect(store.bufferedBytes()).toBe(9_000);
  });

  it('fails the sender promptly when the receiver refuses a transfer', async () => {
    const { site, coord, rejected } = pair({ maxTransferBytes: 10_000 });
    const waiting = coord.receiveBlob('too-big').catch((e: ProtocolError) => e.code);
    const err = (await site.sendBlob('too-big', new Uint8Array(20_000)).catch((e: ProtocolError) => e)) as ProtocolError;
    expect(err).toBeInstanceOf(ProtocolError);
    expect(err.code).toBe('transfer_invalid');
    expect(err.message).toContain('too-big');
    expect(rejected).toEqual(['oversized']);
    expect(await waiting).toBe('oversized'); // the receiver's waiter fails too, not at some timeout
  });

  it('disconnects a peer after too many rejected envelopes', async () => {
    const key = nacl.randomBytes(32);
    const t = createMemoryTransportPair();
    const coord = new SecureChannel(sealedPort(t.coordinator), new SecureSession(key, 'coordinator'), { maxRejects: 3 });
    const closed = new Promise<void>((resolve) => coord.onClose(() => resolve()));
    const peerClosed = new Promise<string>((resolve) => t.site.onClose((r) => resolve(r)));
    for (let i = 0; i < 3; i++) t.site.send('sealed', new Uint8Array(40));
    await closed;
    expect(await peerClosed).toBe('peer_left');
    expect(coord.isClosed).toBe(true);
    expect(t.site.connected).toBe(false);
  });
});
