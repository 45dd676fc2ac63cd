/**
 * Fuzzing the coordinator over real sockets on 127.0.0.1 (issue 11) while three legitimate toy sites train: the
 * `fedsfda coordinator` CLI, three toy site processes, and this process sending at least `--messages` mutated and
 * hostile messages of six kinds, a few connections at a time (below the per-address cap, so that the legitimate sites
 * can still reconnect):
 * - `socketio`: socket.io connections that send unknown events, non-binary and random `sealed` envelopes before any
 *   handshake, then a mutated `hello` (fields dropped, retyped, truncated, oversized, re-signed by a stranger);
 * - `authenticated`: sessions of an enrolled identity (site-4) that complete the handshake and then send sealed
 *   envelopes under the real session key whose plaintexts are random bytes, truncated or bit-flipped encodings of
 *   real messages, replies to requests never made, a `ready` for another site, and tampered/replayed envelopes;
 * - `polling`: the engine.io long-polling path (GET/POST with random queries and bodies);
 * - `websocket`: raw websocket upgrades to /socket.io/ sending garbage engine.io and socket.io frames;
 * - `http`: random methods, paths, headers and bodies on the REST surface;
 * - `tcp`: raw garbage bytes.
 * Counts what was sent, and checks that the coordinator never exited early and that the run completed (every round
 * aggregated, exit 0, every legitimate site released with exit 0).
 * Run: node --import tsx scripts/reliability-fuzz.ts [--messages 10000] [--rounds 200] [--seed 1] [--concurrency 6]   (prints JSON)
 */
import { request } from 'node:http';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { connect as tcpConnect } from 'node:net';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { io, type Socket } from 'socket.io-client';
import { Rng } from '../protocol/common/index.ts';
import { createHello, encodeMessage, generateIdentity, loadIdentity, parsePublicKey, PROTOCOL_VERSION, SecureSession, verifyWelcome, type Identity, type SessionMessage } from '../protocol/index.ts';
import { coordinatorArgs, coordinatorUrl, makeConsortium, startCoordinatorProcess, startToySite, stopAll, type Proc } from '../test/support/process-harness.ts';
import { badOption, intOption, scriptOptions } from './script-options.ts';

const SCRIPT = 'reliability-fuzz';
const o = scriptOptions(
  SCRIPT,
  { messages: { type: 'string', default: '10000' }, rounds: { type: 'string', default: '200' }, seed: { type: 'string', default: '1' }, concurrency: { type: 'string', default: '6' }, kinds: { type: 'string', default: 'socketio,socketio,authenticated,authenticated,polling,websocket,http,tcp' } },
  '[--messages N] [--rounds N] [--seed N] [--concurrency N] [--kinds socketio,authenticated,polling,websocket,http,tcp]',
);
const TARGET = intOption(SCRIPT, 'messages', o.messages, 1);
const ROUNDS = intOption(SCRIPT, 'rounds', o.rounds, 1);
const CONCURRENCY = intOption(SCRIPT, 'concurrency', o.concurrency, 1);
const rng = new Rng(intOption(SCRIPT, 'seed', o.seed));
const KIND_NAMES = ['socketio', 'authenticated', 'polling', 'websocket', 'http', 'tcp'] as const;
type Kind = (typeof KIND_NAMES)[number];
const isKind = (k: string): k is Kind => (KIND_NAMES as readonly string[]).includes(k);
/** The mix of message kinds (a kind listed twice is picked twice as often). */
const KINDS = o.kinds.split(',').map((k) => (isKind(k) ? k : badOption(SCRIPT, `--kinds: unknown kind ${JSON.stringify(k)} (one of ${KIND_NAMES.join(', ')})`)));
const sent: Record<Kind, number> = { socketio: 0, authenticated: 0, polling: 0, websocket: 0, http: 0, tcp: 0 };
const total = (): number => Object.values(sent).reduce((a, b) => a + b, 0);

const int = (n: number): number => Math.floor(rng.next() * n);
const pick = <T>(xs: readonly T[]): T => xs[int(xs.length)];
function randomBytes(n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = int(256);
  return b;
}
const randomString = (n: number): string => Array.from({ length: n }, () => String.fromCharCode(32 + int(95))).join('');

/** A JSON value of some depth: what a confused or hostile peer might put anywhere. */
function randomValue(depth = 2): unknown {
  switch (int(depth > 0 ? 9 : 7)) {
    case 0:
      return null;
    case 1:
      return rng.next() < 0.5;
    case 2:
      return pick([0, -1, 1e308, -0, 2 ** 53, 3.5, Number.MAX_SAFE_INTEGER]);
    case 3:
      return randomString(int(40));
    case 4:
      return 'x'.repeat(pick([1, 1000, 100_000]));
    case 5:
      return pick(['__proto__', 'constructor', '../../etc/passwd', '%00', '\u0000', '<script>']);
    case 6:
      return undefined;
    case 7:
      return Array.from({ length: int(5) }, () => randomValue(depth - 1));
    default:
      return Object.fromEntries(Array.from({ length: int(5) }, () => [pick(['v', 'type', 'siteId', 'round', 'reply', '__proto__', randomString(6)]), randomValue(depth - 1)]));
  }
}

/** A real hello, then one mutation of it. */
function mutatedHello(identity: Identity, siteId: string): unknown {
  const hello: Record<string, unknown> = { ...createHello(identity, siteId).hello };
  const keys = Object.keys(hello);
  switch (int(7)) {
    case 0:
      delete hello[pick(keys)];
      return hello;
    case 1:
      hello[pick(keys)] = randomValue();
      return hello;
    case 2: {
      const k = pick(keys.filter((x) => typeof hello[x] === 'string'));
      hello[k] = (hello[k] as string).slice(0, int((hello[k] as string).length));
      return hello;
    }
    case 3:
      hello.siteId = pick(['site-1', 'site-2', 'SITE-1', '', 'a'.repeat(300), 'site-1\u0000']);
      return hello;
    case 4:
      return randomValue(3);
    case 5:
      return { ...hello, extra: 'x'.repeat(int(200_000)) };
    default:
      return hello; // well-formed and signed, but by an identity that is not enrolled
  }
}

/** socket.io: unknown events, early sealed envelopes, then a mutated hello (which closes the connection). */
async function socketIoConnection(url: string): Promise<void> {
  const s: Socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 10_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    for (let i = 0; i < 40 && s.connected; i++) {
      const r = int(4);
      if (r === 0) s.emit(pick(['welcome', 'refused', 'ready', 'fitRes', randomString(8), 'constructor']), randomValue());
      else if (r === 1) s.emit('sealed', randomValue());
      else s.emit('sealed', randomBytes(pick([0, 1, 25, 40, 100, 5000])));
      sent.socketio++;
    }
    const stranger = generateIdentity();
    s.emit('hello', mutatedHello(stranger, pick(['site-1', 'site-4', 'fuzz-site'])));
    sent.socketio++;
    await new Promise<void>((resolve) => {
      const t = setTimeout(resolve, 2000);
      s.once('disconnect', () => {
        clearTimeout(t);
        resolve();
      });
    });
  } catch {
    /* refused connections count as sent attempts only when something was sent */
  } finally {
    s.close();
  }
}

const ALL_TYPES = ['ready', 'fitRes', 'evaluateRes', 'secaggRes', 'statsRes', 'error', 'transferStart', 'transferResume', 'chunk', 'chunkAck', 'fitIns', 'finish'];

/** A plaintext for a sealed envelope: real message encodings, mutated, or noise. */
function hostilePlaintext(): Uint8Array {
  const valid: SessionMessage[] = [
    { v: PROTOCOL_VERSION, type: 'ready', siteId: pick(['site-1', 'site-2', 'site-3']) },
    { v: PROTOCOL_VERSION, type: 'fitRes', round: int(50), reply: { ok: true, numExamples: int(100), metrics: {}, updateId: `update-${int(9)}` } },
    { v: PROTOCOL_VERSION, type: 'evaluateRes', round: int(50), reply: { ok: false, error: { code: 'trainer_failed', reason: 'x' } } },
    { v: PROTOCOL_VERSION, type: 'transferStart', transferId: `update-${int(9)}`, totalBytes: pick([1, 1e6, 2 ** 40]), chunkBytes: 1000, chunkCount: pick([1, 1000, 2 ** 30]), digest: 'AAAA' },
    { v: PROTOCOL_VERSION, type: 'chunk', transferId: `update-${int(9)}`, index: int(10), data: randomBytes(int(2000)) },
    { v: PROTOCOL_VERSION, type: 'chunkAck', transferId: `model-${int(9)}`, nextIndex: int(10) },
  ] as SessionMessage[];
  let bytes: Uint8Array;
  try {
    bytes = encodeMessage(pick(valid));
  } catch {
    bytes = randomBytes(64);
  }
  switch (int(5)) {
    case 0:
      return bytes;
    case 1:
      return bytes.subarray(0, int(bytes.length));
    case 2: {
      const b = new Uint8Array(bytes);
      for (let i = 0; i < 1 + int(8); i++) b[int(b.length)] ^= 1 << int(8);
      return b;
    }
    case 3:
      return new TextEncoder().encode(JSON.stringify({ v: PROTOCOL_VERSION, type: pick(ALL_TYPES), ...(randomValue(2) as object) }) ?? 'null');
    default:
      return randomBytes(int(3000));
  }
}

/** An enrolled identity that completes the handshake (never `ready` as itself) and sends hostile sealed envelopes. */
async function authenticatedConnection(url: string, fuzzer: Identity, coordinatorKey: Uint8Array): Promise<void> {
  const s: Socket = io(url, { transports: ['websocket'], reconnection: false, forceNew: true, timeout: 10_000 });
  try {
    await new Promise<void>((resolve, reject) => {
      s.once('connect', () => resolve());
      s.once('connect_error', reject);
    });
    const state = createHello(fuzzer, 'site-4');
    const welcome = new Promise<unknown>((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no welcome')), 10_000);
      s.once('welcome', (w: unknown) => {
        clearTimeout(t);
        resolve(w);
      });
      s.once('refused', () => reject(new Error('refused')));
    });
    s.emit('hello', state.hello);
    sent.authenticated++;
    const session = new SecureSession(verifyWelcome(await welcome, state, coordinatorKey), 'site');
    let previous: Uint8Array | null = null;
    // The coordinator closes a session after 32 rejected envelopes; what it accepts is answered as data.
    for (let i = 0; i < 40 && s.connected; i++) {
      let env = session.seal(hostilePlaintext());
      const r = int(10);
      if (r === 0 && previous) env = previous; // replayed
      else if (r === 1) env[10 + int(env.length - 10)] ^= 0xff; // tampered
      previous = env;
      s.emit('sealed', env);
      sent.authenticated++;
    }
  } catch {
    /* refused or closed: the coordinator's choice */
  } finally {
    s.close();
  }
}

function httpRequest(url: string, path: string, method: string, headers: Record<string, string>, body?: string | Uint8Array): Promise<void> {
  return new Promise((resolve) => {
    const req = request(`${url}${path}`, { method, headers }, (res) => {
      res.resume();
      res.on('end', resolve);
      res.on('error', () => resolve());
    });
    req.on('error', () => resolve());
    req.setTimeout(10_000, () => req.destroy());
    req.end(body);
  });
}

async function pollingRequest(url: string): Promise<void> {
  const query = pick(['EIO=4&transport=polling', 'EIO=3&transport=polling', `EIO=4&transport=polling&sid=${randomString(20)}`, `EIO=${int(9)}&transport=${randomString(5)}`, randomString(30), '', 'transport=websocket']);
  const method = pick(['GET', 'POST', 'POST', 'PUT', 'OPTIONS']);
  const body = method === 'GET' ? undefined : pick(['40', '4{"x":1}', '2probe', randomString(int(500)), '0'.repeat(int(10_000))]);
  await httpRequest(url, `/socket.io/?${query}`, method, { 'content-type': pick(['text/plain', 'application/octet-stream', 'application/json']) }, body);
  sent.polling++;
}

async function randomHttp(url: string): Promise<void> {
  const path = pick(['/', '/health', '/status', '/rounds', '/rounds?offset=-1&limit=1e9', '/sites', '/metrics', '/model', '/dashboard', `/${randomString(10)}`, '/%zz', '/..%2f..%2fetc%2fpasswd', `/rounds?limit=${randomString(5)}`]);
  const headers = pick<Record<string, string>>([{}, { authorization: `Bearer ${randomString(30)}` }, { 'x-big': 'y'.repeat(int(60_000)) }, { 'content-length': '5' }, { connection: 'upgrade', upgrade: 'websocket' }]);
  await httpRequest(url, path, pick(['GET', 'POST', 'DELETE', 'PATCH', 'HEAD', 'OPTIONS', 'TRACE']), headers, rng.next() < 0.3 ? randomString(int(2000)) : undefined);
  sent.http++;
}

/** One client websocket frame (masked, as RFC 6455 requires of clients); `opcode` 1 text, 2 binary, others hostile. */
function wsFrame(payload: Uint8Array, opcode: number): Buffer {
  const mask = randomBytes(4);
  const len = payload.length;
  const head = len < 126 ? Buffer.from([0x80 | opcode, 0x80 | len]) : Buffer.from([0x80 | opcode, 0x80 | 126, len >> 8, len & 0xff]);
  const body = Buffer.alloc(len);
  for (let i = 0; i < len; i++) body[i] = payload[i] ^ mask[i % 4];
  return Buffer.concat([head, Buffer.from(mask), body]);
}

/** A raw websocket upgrade to /socket.io/ (engine.io v4), then garbage engine.io / socket.io frames and bad frames. */
async function rawWebSocket(port: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    const t = setTimeout(() => s.destroy(), 3000);
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve();
    });
    let upgraded = false;
    s.on('data', (d) => {
      if (upgraded || !d.toString('latin1').startsWith('HTTP/1.1 101')) return;
      upgraded = true;
      const text = (x: string): Uint8Array => new TextEncoder().encode(x);
      for (let i = 0; i < 10 && !s.destroyed; i++) {
        const frame = pick<() => Buffer>([
          () => wsFrame(text('40'), 1),
          () => wsFrame(text('42["hello",{}]'), 1),
          () => wsFrame(text('451-["sealed",{"_placeholder":true,"num":0}]'), 1),
          () => wsFrame(text(`42${randomString(50)}`), 1),
          () => wsFrame(text(pick(['2', '3', '6', '1', '5', '4'])), 1),
          () => wsFrame(randomBytes(int(500)), 2),
          () => wsFrame(text(`42["sealed","${'A'.repeat(int(5000))}"]`), 1),
          () => wsFrame(randomBytes(int(100)), pick([3, 7, 11, 15])), // reserved opcodes
          () => Buffer.from(randomBytes(int(200))), // not a frame at all
        ])();
        s.write(frame);
        sent.websocket++;
      }
      setTimeout(() => s.end(), 200);
    });
    s.on('connect', () => {
      const key = Buffer.from(randomBytes(16)).toString('base64');
      s.write(`GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`);
    });
  });
}

async function rawTcp(port: number): Promise<void> {
  await new Promise<void>((resolve) => {
    const s = tcpConnect(port, '127.0.0.1');
    const t = setTimeout(() => s.destroy(), 2000);
    s.on('error', () => {});
    s.on('close', () => {
      clearTimeout(t);
      resolve();
    });
    s.on('connect', () => {
      s.write(pick([randomBytes(int(2000)), `GET / HTTP/1.1\r\n${randomString(100)}\r\n\r\n`, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', '\u0016\u0003\u0001\u0000\u00a5\u0001\u0000']));
      sent.tcp++;
      s.end();
    });
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  const load = [loadavg()[0]];
  const dir = await mkdtemp(join(tmpdir(), 'fedsfda-fuzz-'));
  const procs: Proc[] = [];
  try {
    const c = await makeConsortium(dir, 4); // site-4 is the fuzzer's enrolled identity
    const config = { rounds: ROUNDS, minSites: 3, port: 0, timeouts: { waitForSitesMs: 300_000, fitMs: 120_000, evaluateMs: 120_000 } };
    await writeFile(join(dir, 'config.json'), JSON.stringify(config));
    const coord = startCoordinatorProcess(coordinatorArgs(c, join(dir, 'config.json'), ['--out', join(dir, 'run')]));
    procs.push(coord);
    const url = await coordinatorUrl(coord);
    const port = Number(new URL(url).port);
    const sites = c.sites.slice(0, 3).map((s, i) => startToySite({ url, coordinatorKey: c.coordinatorKey, siteId: s.id, identityFile: s.identityFile, seed: 100 + i, maxAttempts: 1000, initialDelayMs: 100, maxDelayMs: 1000 }));
    procs.push(...sites);
    const fuzzer = await loadIdentity(c.sites[3].identityFile);
    const coordinatorKey = parsePublicKey(c.coordinatorKey);
    let coordinatorExited: number | string | null = null;
    let sentBeforeExit: number | null = null;
    void coord.exited.then((e) => {
      coordinatorExited = e;
      sentBeforeExit = total();
    });
    // Every kind once first, then the weighted mix: a run that ends early (a quiet machine trains its rounds fast)
    // has still sent each kind, which the bounded test asserts.
    const firstPass = [...new Set(KINDS)];
    let picks = 0;
    const worker = async (): Promise<void> => {
      while (total() < TARGET && coordinatorExited === null) {
        const kind = picks < firstPass.length ? firstPass[picks] : pick(KINDS);
        picks++;
        switch (kind) {
          case 'socketio':
            await socketIoConnection(url);
            break;
          case 'authenticated':
            await authenticatedConnection(url, fuzzer, coordinatorKey);
            break;
          case 'polling':
            await pollingRequest(url);
            break;
          case 'websocket':
            await rawWebSocket(port);
            break;
          case 'http':
            await randomHttp(url);
            break;
          case 'tcp':
            await rawTcp(port);
            break;
        }
        if (total() % 1000 < 15) load.push(loadavg()[0]);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const fuzzDoneMs = Date.now() - started;
    const fuzzEndedFirst = coordinatorExited === null;
    const exit = await coord.exited;
    const sitesExit = await Promise.all(sites.map((s) => s.exited));
    let history: { round: number; aggregated: boolean }[] = [];
    try {
      history = JSON.parse(await readFile(join(dir, 'run', 'history.json'), 'utf8')) as typeof history;
    } catch {
      /* reported below as 0 rounds */
    }
    const aggregated = history.filter((r) => r.round > 0 && r.aggregated).length;
    const rejected = coord.logs.filter((l) => l.level >= 40).reduce<Record<string, number>>((acc, l) => ((acc[String(l.code ?? l.msg)] = (acc[String(l.code ?? l.msg)] ?? 0) + 1), acc), {});
    load.push(loadavg()[0]);
    console.log(
      JSON.stringify(
        {
          command: `node --import tsx scripts/reliability-fuzz.ts --messages ${TARGET} --rounds ${ROUNDS} --seed ${o.seed} --concurrency ${CONCURRENCY}`,
          date: new Date().toISOString(),
          loadAverage1m: { min: Math.min(...load), max: Math.max(...load) },
          messages: total(),
          // All of them when the fuzzing ended before the run did (the coordinator still had rounds to serve).
          messagesWhileCoordinatorUp: fuzzEndedFirst ? total() : sentBeforeExit,
          byKind: sent,
          fuzzingMs: fuzzDoneMs,
          wallMs: Date.now() - started,
          coordinatorExit: exit,
          coordinatorDiedEarly: exit !== 0,
          runCompleted: exit === 0 && aggregated === ROUNDS && sitesExit.every((e) => e === 0),
          roundsAggregated: aggregated,
          rounds: ROUNDS,
          sitesExit,
          coordinatorWarningsByCode: rejected,
          ...(exit !== 0 ? { coordinatorLastOutput: [...coord.lines.slice(-12), ...coord.logs.slice(-8).map((l) => `${l.code ?? ''} ${l.msg}`)] } : {}),
        },
        null,
        2,
      ),
    );
    if (exit !== 0 || aggregated !== ROUNDS) process.exitCode = 1;
  } finally {
    await stopAll(procs);
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
