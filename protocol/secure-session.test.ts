import { describe, expect, it } from 'vitest';
import nacl from 'tweetnacl';
import { createHello, createWelcome, verifyHello, verifyWelcome } from './handshake.ts';
import { generateIdentity } from './identity.ts';
import { SecureSession } from './secure-session.ts';
import { ProtocolError } from './errors.ts';
import { ReplayWindow } from './replay-window.ts';
import { toBase64, utf8 } from './bytes.ts';

function expectCode(fn: () => unknown, code: ProtocolError['code']): void {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    expect((e as ProtocolError).code).toBe(code);
    return;
  }
  throw new Error(`expected ProtocolError ${code}`);
}

/** A full handshake between a fresh site and coordinator; returns both sessions. */
function handshake() {
  const siteId = generateIdentity();
  const coordId = generateIdentity();
  const state = createHello(siteId, 'site-a');
  const verified = verifyHello(JSON.parse(JSON.stringify(state.hello)));
  const { welcome, sessionKey } = createWelcome(coordId, verified);
  const siteKey = verifyWelcome(JSON.parse(JSON.stringify(welcome)), state, coordId.publicKey);
  return { siteId, coordId, state, welcome, site: new SecureSession(siteKey, 'site'), coord: new SecureSession(sessionKey, 'coordinator') };
}

describe('handshake', () => {
  it('derives the same session key on both sides and authenticates both identities', () => {
    const { site, coord } = handshake();
    const msg = utf8('global weights');
    expect(coord.open(site.seal(msg))).toEqual(msg);
    expect(site.open(coord.seal(msg))).toEqual(msg);
  });

  it('validates on send: a hello with an invalid site id is never built', () => {
    expectCode(() => createHello(generateIdentity(), '../etc/passwd'), 'malformed');
  });

  it('rejects an unsigned hello, a bad signature and a wrong version', () => {
    const id = generateIdentity();
    const { hello } = createHello(id, 'site-a');
    const { signature: _s, ...unsigned } = hello;
    expectCode(() => verifyHello(unsigned), 'unsigned');
    expectCode(() => verifyHello({ ...hello, siteId: 'site-b' }), 'bad_signature');
    expectCode(() => verifyHello({ ...hello, identityKey: toBase64(generateIdentity().publicKey) }), 'bad_signature');
    expectCode(() => verifyHello({ ...hello, v: 2 }), 'bad_version');
    expectCode(() => verifyHello({ ...hello, identityKey: 'AAAA' }), 'malformed');
    expectCode(() => verifyHello('hello'), 'malformed');
  });

  it('site refuses a welcome from a coordinator other than the pinned one, and an unsigned or altered welcome', () => {
    const site = generateIdentity();
    const real = generateIdentity();
    const mitm = generateIdentity();
    const state = createHello(site, 'site-a');
    const { welcome: forged } = createWelcome(mitm, verifyHello(state.hello));
    expectCode(() => verifyWelcome(forged, state, real.publicKey), 'wrong_key');
    const { welcome } = createWelcome(real, verifyHello(state.hello));
    const { signature: _s, ...unsigned } = welcome;
    expectCode(() => verifyWelcome(unsigned, state, real.publicKey), 'unsigned');
    expectCode(() => verifyWelcome({ ...welcome, ephemeralKey: toBase64(nacl.box.keyPair().publicKey) }, state, real.publicKey), 'bad_signature');
    // A welcome answering a different hello (replayed from another session) does not verify.
    const other = createHello(site, 'site-a');
    expectCode(() => verifyWelcome(welcome, other, real.publicKey), 'bad_signature');
  });
});

describe('SecureSession', () => {
  it('rejects a flipped byte anywhere in the ciphertext', () => {
    const { site, coord } = handshake();
    const env = site.seal(utf8('x'.repeat(100)));
    for (const i of [10, 20, env.length - 1]) {
      const bad = new Uint8Array(env);
      bad[i] ^= 0x01;
      expectCode(() => coord.open(bad), 'tampered');
    }
    // The genuine envelope still opens: forged ones did not burn its counter.
    expect(coord.open(env).length).toBe(100);
  });

  it('rejects a replayed envelope and one reordered beyond the window, accepts reordering within it', () => {
    const { site, coord } = handshake();
    const envs = Array.from({ length: 70 }, (_, i) => site.seal(utf8(`m${i}`)));
    expect(coord.open(envs[1])).toEqual(utf8('m1'));
    expect(coord.open(envs[0])).toEqual(utf8('m0')); // out of order but inside the window
    expectCode(() => coord.open(envs[1]), 'replay');
    expect(coord.open(envs[69])).toEqual(utf8('m69'));
    expectCode(() => coord.open(envs[2]), 'reordered'); // 69 - 64 >= 2
    expect(coord.open(envs[10])).toEqual(utf8('m10'));
  });

  it('rejects a wrong key, a reflected envelope, oversized and malformed envelopes', () => {
    const a = handshake();
    const b = handshake();
    expectCode(() => b.coord.open(a.site.seal(utf8('hi'))), 'tampered');
    expectCode(() => a.site.open(a.site.seal(utf8('hi'))), 'malformed'); // own direction reflected back
    const small = new SecureSession(new Uint8Array(32), 'coordinator', { maxEnvelopeBytes: 100 });
    expectCode(() => small.open(new Uint8Array(101)), 'oversized');
    expectCode(() => small.seal(new Uint8Array(200)), 'oversized');
    expectCode(() => a.coord.open('not bytes'), 'malformed');
    expectCode(() => a.coord.open(new Uint8Array(5)), 'malformed');
  });

  it('never reuses a nonce across directions or messages', () => {
    const { site, coord } = handshake();
    const s1 = site.seal(utf8('same'));
    const s2 = site.seal(utf8('same'));
    const c1 = coord.seal(utf8('same'));
    expect(s1.subarray(10)).not.toEqual(s2.subarray(10));
    expect(s1.subarray(10)).not.toEqual(c1.subarray(10));
    expect(s1[1]).not.toBe(c1[1]);
  });
});

describe('ReplayWindow', () => {
  it('accepts each counter once within the window', () => {
    const w = new ReplayWindow(4);
    w.record(5);
    w.record(3);
    expectCode(() => w.record(3), 'replay');
    expectCode(() => w.record(1), 'reordered');
    w.record(9);
    expectCode(() => w.record(5), 'reordered');
  });
});
