/**
 * A session over a transport: seals/opens envelopes, encodes/validates messages, runs chunked transfers with
 * acks (flow-control window, resume by chunk index), and turns every bad envelope into a counted, logged
 * ProtocolError instead of an exception escaping a socket callback. Used identically by site and coordinator.
 */
import { toBase64 } from './bytes.ts';
import { ProtocolError, type ProtocolErrorCode } from './errors.ts';
import { decodeMessage, encodeMessage } from './message-codec.ts';
import { PROTOCOL_VERSION, type MessageOf, type SessionMessage } from './messages.ts';
import type { SecureSession } from './secure-session.ts';
import { TransferStore, sha512 } from './transfer-store.ts';
import type { CloseReason } from './transport.ts';

/** The slice of a Transport a channel needs: the `sealed` event both directions share. */
export interface SealedPort {
  sendSealed(envelope: Uint8Array): void;
  onSealed(listener: (envelope: unknown) => void): () => void;
  onClose(listener: (reason: CloseReason) => void): () => void;
  disconnect(): void;
}

/** Adapt either end of a Transport (both have a `sealed` event) to a SealedPort. */
export function sealedPort(t: {
  send(event: 'sealed', envelope: Uint8Array): void;
  on(event: 'sealed', l: (...args: unknown[]) => void): () => void;
  onClose(l: (r: CloseReason) => void): () => void;
  disconnect(): void;
}): SealedPort {
  return {
    sendSealed: (e) => t.send('sealed', e),
    onSealed: (l) => t.on('sealed', (e: unknown) => l(e)),
    onClose: (l) => t.onClose(l),
    disconnect: () => t.disconnect(),
  };
}

export interface ChannelStats {
  envelopesSent: number;
  envelopesReceived: number;
  bytesSent: number;
  bytesReceived: number;
  rejected: Partial<Record<ProtocolErrorCode, number>>;
}

export interface SecureChannelOptions {
  /** Chunk payload size for transfers (default 256 KiB; must fit one envelope). */
  chunkBytes?: number;
  /** Chunks in flight before waiting for an ack (default 4). */
  window?: number;
  /** Receiver store; pass one that outlives the channel to resume transfers after a reconnect. */
  transfers?: TransferStore;
  maxTransferBytes?: number;
  /** Disconnect the peer after this many rejected envelopes in one session (default 32). */
  maxRejects?: number;
  /** Called for every rejected envelope or message (for logs and metrics). */
  onReject?: (err: ProtocolError) => void;
}

type AckWaiter = { resolve(nextIndex: number): void; reject(e: Error): void };

export class SecureChannel {
  readonly stats: ChannelStats = { envelopesSent: 0, envelopesReceived: 0, bytesSent: 0, bytesReceived: 0, rejected: {} };
  readonly transfers: TransferStore;
  private readonly listeners = new Set<(m: SessionMessage) => void>();
  private readonly closeListeners = new Set<(r: CloseReason) => void>();
  private readonly ackWaiters = new Map<string, AckWaiter>();
  private readonly ackLatest = new Map<string, number>();
  private readonly refused = new Map<string, ProtocolError>();
  private readonly chunkBytes: number;
  private readonly window: number;
  private rejects = 0;
  /** Transfers this channel's callers wait for (the store may be shared with later channels). */
  private readonly awaited = new Set<string>();
  private closed = false;
  private readonly offs: Array<() => void> = [];

  constructor(
    private readonly port: SealedPort,
    private readonly session: SecureSession,
    private readonly opts: SecureChannelOptions = {},
  ) {
    const maxChunk = session.maxPlaintextBytes - 1024; // room for the chunk message's JSON header
    this.chunkBytes = Math.min(opts.chunkBytes ?? 256 * 1024, maxChunk);
    this.window = opts.window ?? 4;
    this.transfers = opts.transfers ?? new TransferStore({ maxChunkBytes: maxChunk, ...(opts.maxTransferBytes ? { maxTransferBytes: opts.maxTransferBytes } : {}) });
    this.offs.push(port.onSealed((e) => this.receive(e)));
    this.offs.push(port.onClose((r) => this.handleClose(r)));
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Validate, encode, seal and send. Throws ProtocolError('malformed') if `msg` violates its schema. */
  send(msg: SessionMessage): void {
    if (this.closed) throw new ProtocolError('closed', 'channel is closed');
    const env = this.session.seal(encodeMessage(msg));
    this.stats.envelopesSent++;
    this.stats.bytesSent += env.length;
    this.port.sendSealed(env);
  }

  /** Listen for application messages (transfer traffic is handled inside). */
  onMessage(l: (m: SessionMessage) => void): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  onClose(l: (r: CloseReason) => void): () => void {
    if (this.closed) {
      queueMicrotask(() => l('local'));
      return () => {};
    }
    this.closeListeners.add(l);
    return () => this.closeListeners.delete(l);
  }

  close(): void {
    this.port.disconnect();
    this.handleClose('local');
  }

  /**
   * Send `bytes` as transfer `transferId` in acknowledged chunks. Resolves when the receiver has acked the last
   * chunk; if the receiver already holds a prefix (a resumed transfer) only the rest is sent.
   */
  async sendBlob(transferId: string, bytes: Uint8Array): Promise<{ chunksSent: number; resumedFrom: number }> {
    if (this.closed) throw new ProtocolError('closed', 'channel is closed');
    const chunkCount = Math.ceil(bytes.length / this.chunkBytes);
    const ack = this.nextAck(transferId);
    ack.catch(() => {}); // awaited below; if the send right after throws, this rejection is not "unhandled"
    this.send({ v: PROTOCOL_VERSION, type: 'transferStart', transferId, totalBytes: bytes.length, chunkBytes: this.chunkBytes, chunkCount, digest: toBase64(sha512(bytes)) });
    const resumedFrom = Math.min(await ack, chunkCount);
    let acked = resumedFrom;
    let next = resumedFrom;
    let sent = 0;
    while (acked < chunkCount) {
      while (next < chunkCount && next - acked < this.window) {
        const data = bytes.subarray(next * this.chunkBytes, Math.min(bytes.length, (next + 1) * this.chunkBytes));
        this.send({ v: PROTOCOL_VERSION, type: 'chunk', transferId, index: next, data });
        next++;
        sent++;
      }
      acked = Math.max(acked, await this.nextAck(transferId));
    }
    this.ackLatest.delete(transferId);
    return { chunksSent: sent, resumedFrom };
  }

  /** Resolve with the payload of transfer `transferId` once it has fully arrived. */
  receiveBlob(transferId: string): Promise<Uint8Array> {
    if (this.closed) return Promise.reject(new ProtocolError('closed', 'channel is closed'));
    this.awaited.add(transferId);
    const p = this.transfers.take(transferId);
    p.then(
      () => this.awaited.delete(transferId),
      () => this.awaited.delete(transferId),
    );
    return p;
  }

  private onTransferRefused(transferId: string, reason: string): void {
    const err = new ProtocolError('transfer_invalid', `peer refused transfer ${transferId}: ${reason}`);
    const w = this.ackWaiters.get(transferId);
    if (w) {
      this.ackWaiters.delete(transferId);
      w.reject(err);
    } else {
      this.refused.set(transferId, err);
    }
  }

  private nextAck(transferId: string): Promise<number> {
    const refused = this.refused.get(transferId);
    if (refused) {
      this.refused.delete(transferId);
      return Promise.reject(refused);
    }
    const latest = this.ackLatest.get(transferId);
    if (latest !== undefined) {
      this.ackLatest.delete(transferId);
      return Promise.resolve(latest);
    }
    if (this.closed) return Promise.reject(new ProtocolError('closed', 'channel closed during transfer'));
    return new Promise((resolve, reject) => this.ackWaiters.set(transferId, { resolve, reject }));
  }

  private onAck(transferId: string, nextIndex: number): void {
    const w = this.ackWaiters.get(transferId);
    if (w) {
      this.ackWaiters.delete(transferId);
      w.resolve(nextIndex);
    } else {
      this.ackLatest.set(transferId, Math.max(nextIndex, this.ackLatest.get(transferId) ?? 0));
    }
  }

  private receive(envelope: unknown): void {
    if (this.closed) return;
    this.stats.envelopesReceived++;
    this.stats.bytesReceived += envelope instanceof Uint8Array ? envelope.length : 0;
    let msg: SessionMessage;
    try {
      msg = decodeMessage(this.session.open(envelope));
    } catch (e) {
      this.reject(e);
      return;
    }
    try {
      this.dispatch(msg);
    } catch (e) {
      this.reject(e);
      if (e instanceof ProtocolError) {
        // Authenticated but wrong: tell the peer (errors as data) without echoing its content. A refused transfer
        // names its id so the sender stops instead of waiting for acks that will never come.
        const transferId = msg.type === 'transferStart' || msg.type === 'chunk' ? msg.transferId : undefined;
        this.trySend({ v: PROTOCOL_VERSION, type: 'error', error: { code: 'bad_request', reason: e.message.slice(0, 200) }, ...(transferId ? { transferId } : {}) });
      }
    }
  }

  private dispatch(msg: SessionMessage): void {
    switch (msg.type) {
      case 'transferStart': {
        const nextIndex = this.transfers.start(msg);
        this.send({ v: PROTOCOL_VERSION, type: 'transferResume', transferId: msg.transferId, nextIndex });
        return;
      }
      case 'chunk': {
        const nextIndex = this.transfers.chunk(msg);
        this.send({ v: PROTOCOL_VERSION, type: 'chunkAck', transferId: msg.transferId, nextIndex });
        return;
      }
      case 'transferResume':
      case 'chunkAck':
        this.onAck(msg.transferId, msg.nextIndex);
        return;
      case 'error':
        if (msg.transferId !== undefined) this.onTransferRefused(msg.transferId, msg.error.reason);
        for (const l of [...this.listeners]) l(msg);
        return;
      default:
        for (const l of [...this.listeners]) l(msg);
    }
  }

  private trySend(msg: SessionMessage): void {
    try {
      if (!this.closed) this.send(msg);
    } catch {
      /* the channel is going away; nothing more to report */
    }
  }

  private reject(e: unknown): void {
    const err = e instanceof ProtocolError ? e : new ProtocolError('malformed', `handler failed: ${(e as Error)?.message ?? String(e)}`);
    this.stats.rejected[err.code] = (this.stats.rejected[err.code] ?? 0) + 1;
    this.opts.onReject?.(err);
    if (++this.rejects >= (this.opts.maxRejects ?? 32)) this.close();
  }

  private handleClose(reason: CloseReason): void {
    if (this.closed) return;
    this.closed = true;
    for (const off of this.offs) off();
    const err = new ProtocolError('closed', `channel closed (${reason})`);
    for (const w of this.ackWaiters.values()) w.reject(err);
    this.ackWaiters.clear();
    // This channel's waiters fail now; partial transfers stay in the store so a new channel can resume them.
    for (const id of [...this.awaited]) this.transfers.cancel(id, err);
    this.awaited.clear();
    for (const l of [...this.closeListeners]) l(reason);
    this.closeListeners.clear();
  }
}

export type { MessageOf };
