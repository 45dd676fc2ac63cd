/**
 * Long-term identities: an Ed25519 key pair per site and per coordinator (tweetnacl `nacl.sign`).
 * Identity keys only sign handshakes; session traffic uses ephemeral X25519 keys (see handshake.ts).
 */
import { readFile } from 'node:fs/promises';
import { writeFileAtomic } from './common/atomic-write.ts';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { fromBase64, toBase64 } from './bytes.ts';
import { parseJsonText, validateConfig } from './common/index.ts';
import { ProtocolError } from './errors.ts';

export interface Identity {
  /** 32-byte Ed25519 public key. */
  readonly publicKey: Uint8Array;
  /** 64-byte Ed25519 secret key (tweetnacl layout: seed || public key). */
  readonly secretKey: Uint8Array;
}

/** A fresh identity from the OS CSPRNG. */
export function generateIdentity(): Identity {
  const kp = nacl.sign.keyPair();
  return { publicKey: kp.publicKey, secretKey: kp.secretKey };
}

/** Base64 of an identity's public key: the form used in allow-lists, CLI flags and logs. */
export function publicKeyToString(key: Uint8Array): string {
  return toBase64(key);
}

/** Parse a base64 Ed25519 public key (32 bytes). */
export function parsePublicKey(s: string): Uint8Array {
  return fromBase64(s, nacl.sign.publicKeyLength);
}

const identityFileSchema = z.object({
  v: z.literal(1),
  type: z.literal('fedsfda-identity'),
  publicKey: z.string(),
  secretKey: z.string(),
}).strict();

/** JSON form of an identity key file. */
export function identityToJson(id: Identity): string {
  return JSON.stringify(
    { v: 1, type: 'fedsfda-identity', publicKey: toBase64(id.publicKey), secretKey: toBase64(id.secretKey) },
    null,
    2,
  );
}

/** Parse and check an identity key file: the public key must be the one the secret key derives. */
export function identityFromJson(text: string, source = 'identity file'): Identity {
  let data: z.output<typeof identityFileSchema>;
  try {
    data = validateConfig(identityFileSchema, parseJsonText(text, source), source, text);
  } catch (e) {
    // ConfigError messages carry positions and key names, never the file's values (the secret key stays out of logs).
    throw new ProtocolError('malformed', (e as Error).message);
  }
  const publicKey = fromBase64(data.publicKey, nacl.sign.publicKeyLength);
  const secretKey = fromBase64(data.secretKey, nacl.sign.secretKeyLength);
  const derived = nacl.sign.keyPair.fromSecretKey(secretKey).publicKey;
  if (!nacl.verify(derived, publicKey)) throw new ProtocolError('wrong_key', 'identity file public key does not match its secret key');
  return { publicKey, secretKey };
}

/** Write an identity file with owner-only permissions (atomic rename). */
export async function saveIdentity(path: string, id: Identity): Promise<void> {
  await writeFileAtomic(path, identityToJson(id), { mode: 0o600 });
}

export async function loadIdentity(path: string): Promise<Identity> {
  return identityFromJson(await readFile(path, 'utf8'), path);
}
