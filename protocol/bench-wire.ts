/**
 * Wire benchmark: handshake latency, seal/open throughput, WeightSet codec throughput, and a chunked, sealed,
 * acknowledged transfer over a real socket.io loopback connection (default 1 MB maxHttpBufferSize).
 * Run: npx tsx protocol/bench-wire.ts [MEGABYTES=20]
 * Numbers depend on machine load; report them with the command and the load.
 */
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Server } from 'socket.io';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import nacl from 'tweetnacl';
import type { ClientToServerEvents, ServerToClientEvents } from './events.ts';
import { createHello, createWelcome, verifyHello, verifyWelcome } from './handshake.ts';
import { generateIdentity } from './identity.ts';
import type { CoordinatorTransport } from './memory-transport.ts';
import { SecureChannel, sealedPort } from './secure-channel.ts';
import { SecureSession } from './secure-session.ts';
import { socketIoClientTransport, socketIoServerTransport } from './socketio-transport.ts';
import { decodeWeightSet, encodeWeightSet } from './tensor-codec.ts';

const MB = 1024 * 1024;

function time<T>(fn: () => T): [T, number] {
  const t = performance.now();
  const r = fn();
  return [r, performance.now() - t];
}

async function main(): Promise<void> {
  const megabytes = Number(process.argv[2] ?? 20);
  const out: Record<string, number> = {};

  // Handshake: both signatures, both verifications, two X25519 agreements (tweetnacl, pure JS).
  const site = generateIdentity();
  const coord = generateIdentity();
  const runs = 10;
  const [, hs] = time(() => {
    for (let i = 0; i < runs; i++) {
      const st = createHello(site, 'bench-site');
      const { welcome } = createWelcome(coord, verifyHello(st.hello));
      verifyWelcome(welcome, st, coord.publicKey);
    }
  });
  out.handshakeMs = hs / runs;

  // Seal/open of 256 KiB envelopes.
  const key = nacl.randomBytes(32);
  const a = new SecureSession(key, 'site');
  const b = new SecureSession(key, 'coordinator');
  const payload = nacl.randomBytes(256 * 1024);
  const n = 40;
  const envs: Uint8Array[] = [];
  const [, sealMs] = time(() => {
    for (let i = 0; i < n; i++) envs.push(a.seal(payload));
  });
  const [, openMs] = time(() => {
    for (const e of envs) b.open(e);
  });
  out.sealMBps = (n * payload.length) / MB / (sealMs / 1000);
  out.openMBps = (n * payload.length) / MB / (openMs / 1000);

  // Codec.
  const elems = Math.floor((megabytes * MB) / 4);
  const ws = [{ name: 'big.w', shape: [elems], data: Float32Array.from({ length: elems }, (_, i) => Math.sin(i)) }];
  const [bytes, encMs] = time(() => encodeWeightSet(ws));
  const [, decMs] = time(() => decodeWeightSet(bytes));
  out.encodeMBps = bytes.length / MB / (encMs / 1000);
  out.decodeMBps = bytes.length / MB / (decMs / 1000);

  // Transfer over socket.io loopback.
  const http = createServer();
  const io = new Server<ClientToServerEvents, ServerToClientEvents>(http, { serveClient: false });
  const accepted = new Promise<CoordinatorTransport>((r) => io.once('connection', (s) => r(socketIoServerTransport(s))));
  await new Promise<void>((r) => http.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(http.address() as AddressInfo).port}`;
  const sock = ioClient(url, { transports: ['websocket'], reconnection: false, forceNew: true }) as ClientSocket<ServerToClientEvents, ClientToServerEvents>;
  await new Promise<void>((r) => sock.once('connect', () => r()));
  const server = new SecureChannel(sealedPort(await accepted), new SecureSession(key, 'coordinator'));
  const client = new SecureChannel(sealedPort(socketIoClientTransport(sock, url)), new SecureSession(key, 'site'));
  const received = client.receiveBlob('bench');
  const t0 = performance.now();
  await server.sendBlob('bench', bytes);
  await received;
  const xferMs = performance.now() - t0;
  out.transferMB = bytes.length / MB;
  out.transferMs = xferMs;
  out.transferMBps = bytes.length / MB / (xferMs / 1000);
  out.envelopes = server.stats.envelopesSent;
  sock.close();
  await new Promise<void>((r) => io.close(() => r()));

  for (const [k, v] of Object.entries(out)) console.log(`${k.padEnd(14)} ${v.toFixed(2)}`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
