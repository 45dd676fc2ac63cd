/**
 * Who may join: an allow-list (site id -> Ed25519 public key) plus one-time enrollment tokens.
 * A token lets a new site register its key once; afterwards the key is on the allow-list and the token is spent.
 * The token never travels: the site sends HMAC-SHA512(token, siteId || identityKey || ephemeralKey || nonce), so an
 * eavesdropper on the (clear) handshake learns nothing it could enroll with, and a proof cannot be replayed for
 * another key. Spent tokens disappear from `toJSON()`, so saving the file after an enrollment makes it stick.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { writeFileAtomic } from './common/atomic-write.ts';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { bytesEqual, toBase64 } from './bytes.ts';
import { readJsonFile, validateConfig } from './common/index.ts';
import { parsePublicKey, publicKeyToString } from './identity.ts';
import { ProtocolError } from './errors.ts';

export const SITE_ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;

const enrollmentFileSchema = z.object({
  v: z.literal(1),
  sites: z.record(z.string().regex(SITE_ID_RE), z.string()).default({}),
  /** Plain tokens (as distributed to sites), optionally bound to a site id. */
  tokens: z.array(z.object({ token: z.string().min(16), siteId: z.string().regex(SITE_ID_RE).optional() }).strict()).default([]),
}).strict();
export type EnrollmentFile = z.infer<typeof enrollmentFileSchema>;

/** Outcome of an admission check: data, not an exception, because refusal is an expected path. */
export type Admission =
  | { ok: true; siteId: string; via: 'allow-list' | 'token' }
  | { ok: false; code: 'not_enrolled' | 'wrong_key'; reason: string };

export const TOKEN_PROOF_BYTES = 64;

/** HMAC-SHA512 keyed by the token over `message` (the handshake fields; see handshake.ts). */
export function enrollmentTokenProof(token: string, message: Uint8Array): Uint8Array {
  return new Uint8Array(createHmac('sha512', `fedsfda/enroll-token/v1:${token}`).update(message).digest());
}

export class Enrollment {
  private readonly sites = new Map<string, Uint8Array>();
  private readonly tokens = new Map<string, { siteId?: string }>();
  /** Called after a token enrolled a new site (e.g. to persist the allow-list). */
  onEnrolled: ((siteId: string) => void) | null = null;

  /** Allow `siteId` with `publicKey` (base64 or bytes). Re-enrolling a site id with another key replaces it. */
  allow(siteId: string, publicKey: Uint8Array | string): this {
    if (!SITE_ID_RE.test(siteId)) throw new ProtocolError('malformed', `invalid site id ${JSON.stringify(siteId)}`);
    this.sites.set(siteId, typeof publicKey === 'string' ? parsePublicKey(publicKey) : new Uint8Array(publicKey));
    return this;
  }

  /** Register a one-time token, optionally bound to one site id. Returns the token for chaining in tests. */
  addToken(token: string, siteId?: string): string {
    if (token.length < 16) throw new ProtocolError('malformed', 'enrollment tokens must be at least 16 characters');
    this.tokens.set(token, siteId === undefined ? {} : { siteId });
    return token;
  }

  /** A fresh random token (base64 of 24 random bytes). */
  static newToken(): string {
    return toBase64(nacl.randomBytes(24));
  }

  /** The enrolled key for a site, if any. */
  keyOf(siteId: string): Uint8Array | undefined {
    return this.sites.get(siteId);
  }

  siteIds(): string[] {
    return [...this.sites.keys()];
  }

  /**
   * Decide whether `siteId` with `publicKey` may connect. A valid proof of an unspent token enrolls the key and
   * spends the token. Call only after the handshake signature has been verified (so the caller holds the secret key).
   */
  admit(siteId: string, publicKey: Uint8Array, tokenProof?: { proof: Uint8Array; message: Uint8Array }): Admission {
    const known = this.sites.get(siteId);
    if (known !== undefined) {
      if (bytesEqual(known, publicKey)) return { ok: true, siteId, via: 'allow-list' };
      return { ok: false, code: 'wrong_key', reason: `site ${siteId} is enrolled with a different public key` };
    }
    if (tokenProof !== undefined) {
      for (const [token, entry] of this.tokens) {
        if (entry.siteId !== undefined && entry.siteId !== siteId) continue;
        const expected = enrollmentTokenProof(token, tokenProof.message);
        if (expected.length === tokenProof.proof.length && timingSafeEqual(expected, tokenProof.proof)) {
          this.tokens.delete(token);
          this.sites.set(siteId, new Uint8Array(publicKey));
          this.onEnrolled?.(siteId);
          return { ok: true, siteId, via: 'token' };
        }
      }
      return { ok: false, code: 'not_enrolled', reason: 'enrollment token unknown, spent, or bound to another site' };
    }
    return { ok: false, code: 'not_enrolled', reason: `site ${siteId} is not on the allow-list` };
  }

  toJSON(): EnrollmentFile {
    const sites: Record<string, string> = {};
    for (const [id, k] of this.sites) sites[id] = publicKeyToString(k);
    const tokens = [...this.tokens].map(([token, e]) => (e.siteId === undefined ? { token } : { token, siteId: e.siteId }));
    return { v: 1, sites, tokens };
  }

  /** Write the allow-list and the unspent tokens (owner-only permissions, atomic rename). */
  async save(path: string): Promise<void> {
    await writeFileAtomic(path, JSON.stringify(this.toJSON(), null, 2), { mode: 0o600 });
  }

  /** Validates an enrollment (or peers) file's content (strict: unknown keys are errors); `text` adds line and column. */
  static fromJSON(raw: unknown, source = 'enrollment file', text?: string): Enrollment {
    let parsed: { data: EnrollmentFile };
    try {
      parsed = { data: validateConfig(enrollmentFileSchema, raw, source, text) };
    } catch (e) {
      throw new ProtocolError('malformed', (e as Error).message);
    }
    const e = new Enrollment();
    for (const [id, key] of Object.entries(parsed.data.sites)) e.allow(id, key);
    for (const t of parsed.data.tokens) e.addToken(t.token, t.siteId);
    return e;
  }

  static async load(path: string): Promise<Enrollment> {
    let file: { raw: unknown; text: string };
    try {
      file = await readJsonFile(path);
    } catch (e) {
      throw new ProtocolError('malformed', `enrollment file ${(e as Error).message}`);
    }
    return Enrollment.fromJSON(file.raw, path, file.text);
  }
}
