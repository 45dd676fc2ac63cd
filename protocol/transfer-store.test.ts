import { describe, expect, it } from 'vitest';
import { toBase64 } from './bytes.ts';
import { ProtocolError } from './errors.ts';
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

describe('TransferStore admit hook', () => {
  it("refuses a new transfer by the owner's check before allocating it, and tells its waiter", async () => {
    const seen: number[] = [];
    const store = new TransferStore({
      maxChunkBytes: 1024,
      admit: (m) => {
        seen.push(m.totalBytes);
        if (m.totalBytes > 4096) throw new ProtocolError('oversized', 'over budget');
      },
    });
    const waiting = store.take('big');
    expect(() => store.start(start('big', new Uint8Array(8192), 1024))).toThrow(/over budget/);
    await expect(waiting).rejects.toMatchObject({ code: 'oversized' });
    expect(store.bufferedBytes()).toBe(0);
    const small = new Uint8Array(2048);
    expect(store.start(start('small', small, 1024))).toBe(0);
    expect(store.start(start('small', small, 1024))).toBe(0); // a resume is not checked again
    expect(seen).toEqual([8192, 2048]);
  });
});
