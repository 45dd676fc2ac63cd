/**
 * socket.io event maps shared by coordinator and site (typed `Server<ClientToServerEvents, ServerToClientEvents>`).
 * Handshake messages are plain objects; everything after is an opaque sealed envelope (bytes).
 * Receivers still validate: the types describe what an honest peer sends, not what arrives.
 */
import type { Hello, Refused, Welcome } from './messages.ts';

export interface ClientToServerEvents {
  hello: (msg: Hello) => void;
  sealed: (envelope: Uint8Array) => void;
}

export interface ServerToClientEvents {
  welcome: (msg: Welcome) => void;
  refused: (msg: Refused) => void;
  sealed: (envelope: Uint8Array) => void;
}
