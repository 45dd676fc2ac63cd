/**
 * The narrow transport both sides talk through (STYLE.md habit 4, after disco's on/once/send/disconnect):
 * typed by the event map it receives (`In`) and the one it sends (`Out`). Two implementations:
 * in-memory (unit tests) and socket.io (real network). A transport does no validation; the session does.
 */

/** An event map: event name -> listener signature (socket.io style). */
export type EventMap = object;

/** Argument tuple of event `E` in map `M`. */
export type EventArgs<M, E extends keyof M> = M[E] extends (...args: infer A) => void ? A : never;

/**
 * Why a transport closed, as a closed union (mirrors socket.io's DisconnectReason, coarsened): closed by this end
 * (`local`); the peer ended the session on purpose (`peer_left`: it will not come back for the open request); no
 * heartbeat within the ping timeout (`heartbeat_timeout`: a blocked or vanished peer); the link dropped (`remote`)
 * or failed (`transport_error`).
 */
export type CloseReason = 'local' | 'remote' | 'peer_left' | 'heartbeat_timeout' | 'transport_error';

export interface Transport<In extends EventMap, Out extends EventMap> {
  /** Send one event to the peer. Never throws on a closed transport (the message is dropped). */
  send<E extends keyof Out & string>(event: E, ...args: EventArgs<Out, E>): void;
  /** Listen for an event from the peer. Returns a function that removes the listener. */
  on<E extends keyof In & string>(event: E, listener: (...args: unknown[]) => void): () => void;
  /** Listen once. Returns a function that removes the listener. */
  once<E extends keyof In & string>(event: E, listener: (...args: unknown[]) => void): () => void;
  /** Called once when the transport closes, whichever side closed it. */
  onClose(listener: (reason: CloseReason) => void): () => void;
  /** Close the transport (idempotent). */
  disconnect(): void;
  readonly connected: boolean;
  /** Peer description for logs (address or test label). */
  readonly peer: string;
}
