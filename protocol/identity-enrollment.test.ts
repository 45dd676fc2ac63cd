import { mkdtemp, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Enrollment, enrollmentTokenProof } from './enrollment.ts';
import { ProtocolError } from './errors.ts';
import { generateIdentity, identityFromJson, identityToJson, loadIdentity, publicKeyToString, saveIdentity } from './identity.ts';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});

describe('identity files', () => {
  it('round-trip through disk with owner-only permissions', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-id-'));
    dirs.push(dir);
    const id = generateIdentity();
    await saveIdentity(join(dir, 'site.json'), id);
    const back = await loadIdentity(join(dir, 'site.json'));
    expect(back.publicKey).toEqual(id.publicKey);
    expect(back.secretKey).toEqual(id.secretKey);
    expect((await stat(join(dir, 'site.json'))).mode & 0o077).toBe(0);
  });

  it('refuses a file whose public key does not match its secret key, and junk', () => {
    const a = JSON.parse(identityToJson(generateIdentity()));
    a.publicKey = publicKeyToString(generateIdentity().publicKey);
    expect(() => identityFromJson(JSON.stringify(a))).toThrow(ProtocolError);
    expect(() => identityFromJson('{')).toThrow(/identity file:1:2: \(root\): invalid JSON/);
    expect(() => identityFromJson('{"v":1}')).toThrow(/identity file:1:1: type: missing \(expected fedsfda-identity\)/);
  });
});

describe('Enrollment', () => {
  it('admits allow-listed keys, refuses unknown and mismatched ones', () => {
    const a = generateIdentity();
    const e = new Enrollment().allow('site-a', a.publicKey);
    expect(e.admit('site-a', a.publicKey)).toEqual({ ok: true, siteId: 'site-a', via: 'allow-list' });
    expect(e.admit('site-a', generateIdentity().publicKey)).toMatchObject({ ok: false, code: 'wrong_key' });
    expect(e.admit('site-b', a.publicKey)).toMatchObject({ ok: false, code: 'not_enrolled' });
  });

  it('spends a one-time token exactly once, honouring its site binding; the proof is bound to the key', () => {
    const e = new Enrollment();
    const token = e.addToken(Enrollment.newToken(), 'site-n');
    const k = generateIdentity().publicKey;
    const msg = new Uint8Array([1, 2, 3]);
    const proof = { proof: enrollmentTokenProof(token, msg), message: msg };
    const enrolled: string[] = [];
    e.onEnrolled = (id) => enrolled.push(id);
    expect(e.admit('site-m', k, proof)).toMatchObject({ ok: false, code: 'not_enrolled' });
    expect(e.admit('site-n', k, { proof: enrollmentTokenProof('wrong-token-xxxxxxxx', msg), message: msg })).toMatchObject({ ok: false });
    expect(e.admit('site-n', k, { proof: proof.proof, message: new Uint8Array([9]) })).toMatchObject({ ok: false }); // proof for other handshake fields
    expect(e.admit('site-n', k, proof)).toMatchObject({ ok: true, via: 'token' });
    expect(enrolled).toEqual(['site-n']);
    expect(e.admit('site-n', k)).toMatchObject({ ok: true, via: 'allow-list' });
    expect(e.admit('site-o', generateIdentity().publicKey, proof)).toMatchObject({ ok: false, code: 'not_enrolled' });
    expect(e.toJSON().tokens).toEqual([]); // spent tokens are not written back
  });

  it('loads from JSON and validates it', () => {
    const k = generateIdentity().publicKey;
    const e = Enrollment.fromJSON({ v: 1, sites: { 'site-a': publicKeyToString(k) }, tokens: [{ token: 'abcdefghijklmnopqrstu' }] });
    expect(e.siteIds()).toEqual(['site-a']);
    expect(e.toJSON().tokens).toEqual([{ token: 'abcdefghijklmnopqrstu' }]);
    const msg = new Uint8Array([7]);
    expect(e.admit('site-z', generateIdentity().publicKey, { proof: enrollmentTokenProof('abcdefghijklmnopqrstu', msg), message: msg }).ok).toBe(true);
    expect(() => Enrollment.fromJSON({ v: 1, sites: { 'bad id!': 'x' } })).toThrow(ProtocolError);
    expect(() => Enrollment.fromJSON({ v: 1, sites: { ok: 'AAAA' } })).toThrow(ProtocolError);
  });
});
