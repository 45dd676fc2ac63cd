/**
 * socket.io implementations of Transport. The server end wraps a connected server-side Socket; the client
 * end wraps a socket.io-client Socket (created by the caller, so reconnection policy stays the caller's).
 */
import type { Socket as ServerSocket } from 'socket.io';
import type { Socket as ClientSocket } from 'socket.io-client';
import type { ClientToServerEvents, ServerToClientEvents } from './events.ts';
import type { CoordinatorTransport, SiteTransport } from './memory-transport.ts';
import type { CloseReason } from './transport.ts';

type Listener = (...args: unknown[]) => void;
type AnySocket = {
  on(ev: string, l: Listener): unknown;
  off(ev: string, l: Listener): unknown;
  emit(ev: string, ...args: unknown[]): unknown;
  disconnect(): unknown;
  connected: boolean;
};

function wrap(socket: AnySocket, peer: string, mapReason: (r: string) => CloseReason) {
  const closeListeners = new Set<(r: CloseReason) => void>();
  let closed = false;
  let localClose = false;
  const onDisconnect = (reason: unknown): void => {
    if (closed) return;
    closed = true;
    const r: CloseReason = localClose ? 'local' : mapReason(String(reason));
    for (const l of [...closeListeners]) l(r);
    closeListeners.clear();
  };
  socket.on('disconnect', onDisconnect);
  return {
    peer,
    get connected(): boolean {
      return !closed && socket.connected;
    },
    send(event: string, ...args: unknown[]): void {
      if (closed || !socket.connected) return;
      socket.emit(event, ...args);
    },
    on(event: string, listener: Listener): () => void {
      socket.on(event, listener);
      return () => void socket.off(event, listener);
    },
    once(event: string, listener: Listener): () => void {
      const wrapped: Listener = (...args) => {
        socket.off(event, wrapped);
        listener(...args);
      };
      socket.on(event, wrapped);
      return () => void socket.off(event, wrapped);
    },
    onClose(listener: (r: CloseReason) => void): () => void {
      if (closed) {
        queueMicrotask(() => listener('local'));
        return () => {};
      }
      closeListeners.add(listener);
      return () => void closeListeners.delete(listener);
    },
    disconnect(): void {
      if (closed) return;
      localClose = true;
      socket.disconnect();
      onDisconnect('io client disconnect');
    },
  };
}

/** socket.io's DisconnectReason (server and client side) as a CloseReason. */
function reasonOf(r: string): CloseReason {
  if (r === 'client namespace disconnect' || r === 'server namespace disconnect' || r === 'io server disconnect') return 'peer_left';
  if (r === 'ping timeout') return 'heartbeat_timeout';
  return r.includes('error') ? 'transport_error' : 'remote';
}

/** Server end: `io.on('connection', (s) => coordinator.accept(socketIoServerTransport(s)))`. */
export function socketIoServerTransport(socket: ServerSocket<ClientToServerEvents, ServerToClientEvents>): CoordinatorTransport {
  const peer = `${socket.handshake.address}#${socket.id}`;
  return wrap(socket as unknown as AnySocket, peer, reasonOf) as unknown as CoordinatorTransport;
}

/** Client end: `socketIoClientTransport(io(url, { reconnection: false, transports: ['websocket'] }))`. */
export function socketIoClientTransport(socket: ClientSocket<ServerToClientEvents, ClientToServerEvents>, peer: string): SiteTransport {
  return wrap(socket as unknown as AnySocket, peer, reasonOf) as unknown as SiteTransport;
}
