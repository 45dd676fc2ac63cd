import { describe, expect, it } from 'vitest';
import { toBase64 } from './bytes.ts';
import { TransferStore, sha512 } from './transfer-store.ts';

const start = (transferId: string, bytes: Uint8Array, chunkBytes: number) => ({
  v: 1 as const,
  type: 'transferStart' as const,
  transferId,
  totalBytes: bytes.length,
  chunkBytes,
  chunkCount: Math.ceil(bytes.length / chunkBytes),
  digest: toBase64(sha512(bytes)),
});

describe('TransferStore.expire', () => {
  it('drops partial transfers without progress since the cutoff, frees their memory and fails their waiter', async () => {
    const store = new TransferStore({ maxChunkBytes: 1024, maxTransferBytes: 1 << 20 });
    const big = new Uint8Array(8192).fill(7);
    store.start(start('abandoned', big, 1024));
    store.chunk({ v: 1, type: 'chunk', transferId: 'abandoned', index: 0, data: big.subarray(0, 1024) });
    const waiting = store.take('abandoned');
    const cutoff = Date.now() + 1; // everything so far is older than the cutoff
    const dropped = store.expire(cutoff);
    expect(dropped).toEqual([{ transferId: 'abandoned', totalBytes: 8192, receivedBytes: 1024 }]);
    expect(store.bufferedBytes()).toBe(0);
    await expect(waiting).rejects.toMatchObject({ code: 'transfer_invalid' });
    expect(store.progress('abandoned')).toBe(0); // a later restart of the transfer begins again
  });

  it('keeps transfers that progressed after the cutoff', () => {
    const store = new TransferStore({ maxChunkBytes: 1024 });
    const b = new Uint8Array(2048);
    const cutoff = Date.now() - 1;
    store.start(start('active', b, 1024));
    expect(store.expire(cutoff)).toEqual([]);
    expect(store.bufferedBytes()).toBe(2048);
  });
});
