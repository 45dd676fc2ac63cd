/**
 * In-memory transport pair for unit tests: delivery is asynchronous (a microtask per message, in order),
 * binary payloads are copied so neither side can alias the other's buffers, exactly as over a socket.
 */
import type { ClientToServerEvents, ServerToClientEvents } from './events.ts';
import type { CloseReason, EventArgs, EventMap, Transport } from './transport.ts';

type Listener = (...args: unknown[]) => void;

function copyArg(a: unknown): unknown {
  return a instanceof Uint8Array ? new Uint8Array(a) : a === undefined ? a : JSON.parse(JSON.stringify(a));
}

class MemoryEnd<In extends EventMap, Out extends EventMap> implements Transport<In, Out> {
  peerEnd!: MemoryEnd<Out, In>;
  private readonly listeners = new Map<string, Set<Listener>>();
  private readonly closeListeners = new Set<(r: CloseReason) => void>();
  connected = true;
  /** Messages delivered to this end (for tests that count traffic). */
  received = 0;

  constructor(readonly peer: string) {}

  send<E extends keyof Out & string>(event: E, ...args: EventArgs<Out, E>): void {
    if (!this.connected) return;
    const copied = (args as unknown[]).map(copyArg);
    const target = this.peerEnd;
    queueMicrotask(() => target.deliver(event, copied));
  }

  private deliver(event: string, args: unknown[]): void {
    if (!this.connected) return;
    this.received++;
    for (const l of [...(this.listeners.get(event) ?? [])]) l(...args);
  }

  on<E extends keyof In & string>(event: E, listener: Listener): () => void {
    let set = this.listeners.get(event);
    if (!set) this.listeners.set(event, (set = new Set()));
    set.add(listener);
    return () => set.delete(listener);
  }

  once<E extends keyof In & string>(event: E, listener: Listener): () => void {
    const off = this.on(event, (...args) => {
      off();
      listener(...args);
    });
    return off;
  }

  onClose(listener: (r: CloseReason) => void): () => void {
    this.closeListeners.add(listener);
    return () => this.closeListeners.delete(listener);
  }

  closeWith(reason: CloseReason): void {
    if (!this.connected) return;
    this.connected = false;
    for (const l of [...this.closeListeners]) l(reason);
    this.listeners.clear();
    this.closeListeners.clear();
  }

  /** Close on purpose: this end sees `local`, the peer `peer_left` (socket.io: a namespace disconnect). */
  disconnect(): void {
    if (!this.connected) return;
    const peer = this.peerEnd;
    this.closeWith('local');
    queueMicrotask(() => peer.closeWith('peer_left'));
  }

  /** The link drops under both ends (a cut cable, a missed heartbeat): each sees `reason`. */
  drop(reason: CloseReason = 'remote'): void {
    if (!this.connected) return;
    const peer = this.peerEnd;
    this.closeWith(reason);
    queueMicrotask(() => peer.closeWith(reason));
  }
}

export type SiteTransport = Transport<ServerToClientEvents, ClientToServerEvents>;
export type CoordinatorTransport = Transport<ClientToServerEvents, ServerToClientEvents>;

/**
 * A connected pair: `site` is the client end, `coordinator` the server end; `drop()` cuts the link under both
 * (neither end closed it on purpose), unlike `disconnect()` on one end.
 */
export function createMemoryTransportPair(label = 'memory'): { site: SiteTransport; coordinator: CoordinatorTransport; drop(reason?: CloseReason): void } {
  const site = new MemoryEnd<ServerToClientEvents, ClientToServerEvents>(`${label}:coordinator`);
  const coordinator = new MemoryEnd<ClientToServerEvents, ServerToClientEvents>(`${label}:site`);
  site.peerEnd = coordinator;
  coordinator.peerEnd = site;
  return { site, coordinator, drop: (reason) => site.drop(reason) };
}
