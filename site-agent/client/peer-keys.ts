/**
 * The identity keys of the peer sites a site will run secure aggregation with (SECURITY.md, "Peer identities"):
 * pinned out of band (strict: any other peer is refused), or learned the first time a coordinator presents them and
 * kept (trust on first use) — in a file, so that a restarted site still refuses a coordinator that later presents a
 * different key for the same peer. The file is replaced atomically, and a newly learned key is on disk before the
 * site uses it.
 */
import { readFile } from 'node:fs/promises';
import { z } from 'zod';
import { bytesEqual, fromBase64, SITE_ID_RE, toBase64 } from '../../protocol/index.ts';
import { writeFileAtomic } from '../../protocol/common/index.ts';

const fileSchema = z.object({ v: z.literal(1), kind: z.literal('fedsfda-known-peers'), peers: z.record(z.string().regex(SITE_ID_RE), z.string()) }).strict();

export class PeerKeyError extends Error {
  override readonly name = 'PeerKeyError';
}

export class PeerKeys {
  private readonly known = new Map<string, Uint8Array>();
  private saving: Promise<void> = Promise.resolve();

  /**
   * @param pinned keys obtained out of band: only these peers are accepted (strict mode).
   * @param file where learned keys are kept across restarts (absent: in memory only).
   */
  constructor(
    pinned?: ReadonlyMap<string, Uint8Array>,
    readonly file?: string,
  ) {
    this.strict = pinned !== undefined;
    for (const [id, k] of pinned ?? []) this.known.set(id, new Uint8Array(k));
  }

  readonly strict: boolean;

  /** Read the keys learned in earlier runs (a missing file is an empty one). Throws PeerKeyError for a corrupt file. */
  async load(): Promise<void> {
    if (!this.file) return;
    let text: string;
    try {
      text = await readFile(this.file, 'utf8');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw new PeerKeyError(`cannot read known peers ${this.file}: ${(e as Error).message}`);
    }
    let parsed: z.infer<typeof fileSchema>;
    try {
      parsed = fileSchema.parse(JSON.parse(text));
    } catch (e) {
      throw new PeerKeyError(`known peers file ${this.file} is corrupt: ${(e as Error).message.slice(0, 200)}`);
    }
    for (const [id, b64] of Object.entries(parsed.peers)) {
      const key = fromBase64(b64, 32);
      const pinned = this.known.get(id);
      if (pinned && !bytesEqual(pinned, key)) throw new PeerKeyError(`known peers file ${this.file} holds a key for "${id}" that differs from the pinned one`);
      if (!pinned) this.known.set(id, key);
    }
  }

  get(siteId: string): Uint8Array | undefined {
    return this.known.get(siteId);
  }

  /** Remember keys seen for the first time, on disk before this resolves. */
  async learn(keys: ReadonlyMap<string, Uint8Array>): Promise<void> {
    let changed = false;
    for (const [id, k] of keys) {
      if (!this.known.has(id)) {
        this.known.set(id, new Uint8Array(k));
        changed = true;
      }
    }
    if (!changed || !this.file) return;
    const file = this.file;
    const json = JSON.stringify({ v: 1, kind: 'fedsfda-known-peers', peers: Object.fromEntries([...this.known].map(([id, k]) => [id, toBase64(k)])) }, null, 2);
    this.saving = this.saving.catch(() => {}).then(() => writeFileAtomic(file, json, { mode: 0o600 }));
    await this.saving;
  }
}
