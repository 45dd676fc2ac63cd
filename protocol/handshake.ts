/**
 * Mutually authenticated key agreement (a SIGMA-style signed ephemeral Diffie-Hellman):
 *   site -> coordinator  hello   {siteId, identityKey, ephemeralKey, nonce, tokenProof?, sig_site(hello fields)}
 *   coordinator -> site  welcome {coordinatorKey, ephemeralKey, nonce, sig_coord(H(hello) || welcome fields)}
 * Both derive key = SHA-512("fedsfda/session/v1" || box.before(peerEph, myEph) || transcript)[0..32].
 * The site pins the coordinator's identity key; the coordinator checks the site against its enrollment.
 * Ephemeral keys are fresh per connection, so a replayed hello cannot produce a usable session (forward secrecy).
 */
import nacl from 'tweetnacl';
import { concatBytes, fromBase64, lengthPrefixed, toBase64, utf8, bytesEqual } from './bytes.ts';
import { ProtocolError } from './errors.ts';
import type { Identity } from './identity.ts';
import { enrollmentTokenProof, TOKEN_PROOF_BYTES } from './enrollment.ts';
import { helloSchema, welcomeSchema, PROTOCOL_VERSION, type Hello, type Welcome } from './messages.ts';

const HELLO_LABEL = utf8('fedsfda/hello/v1');
const WELCOME_LABEL = utf8('fedsfda/welcome/v1');
const SESSION_LABEL = utf8('fedsfda/session/v1');
const NONCE_BYTES = 32;

function helloSignedBytes(siteId: string, identityKey: Uint8Array, ephemeralKey: Uint8Array, nonce: Uint8Array, tokenProof: Uint8Array | undefined): Uint8Array {
  return concatBytes(HELLO_LABEL, lengthPrefixed(utf8(siteId)), identityKey, ephemeralKey, nonce, lengthPrefixed(tokenProof ?? new Uint8Array(0)));
}

/** What a token proof is computed over: binds it to this site id, identity key and this handshake. */
function tokenProofMessage(siteId: string, identityKey: Uint8Array, ephemeralKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return concatBytes(lengthPrefixed(utf8(siteId)), identityKey, ephemeralKey, nonce);
}

function welcomeSignedBytes(helloDigest: Uint8Array, coordinatorKey: Uint8Array, ephemeralKey: Uint8Array, nonce: Uint8Array): Uint8Array {
  return concatBytes(WELCOME_LABEL, helloDigest, coordinatorKey, ephemeralKey, nonce);
}

function deriveKey(peerEphemeral: Uint8Array, ownEphemeralSecret: Uint8Array, transcript: Uint8Array): Uint8Array {
  const shared = nacl.box.before(peerEphemeral, ownEphemeralSecret);
  return nacl.hash(concatBytes(SESSION_LABEL, shared, nacl.hash(transcript))).slice(0, nacl.secretbox.keyLength);
}

/** Parse `raw` with a schema, mapping a wrong version to 'bad_version' and anything else to 'malformed'. */
function parseVersioned<T>(raw: unknown, schema: { safeParse(x: unknown): { success: true; data: T } | { success: false } }, what: string): T {
  if (typeof raw === 'object' && raw !== null && 'v' in raw && (raw as { v: unknown }).v !== PROTOCOL_VERSION) {
    throw new ProtocolError('bad_version', `${what} has protocol version ${String((raw as { v: unknown }).v)}, expected ${PROTOCOL_VERSION}`);
  }
  const r = schema.safeParse(raw);
  if (!r.success) throw new ProtocolError('malformed', `${what} does not match its schema`);
  return r.data;
}

/** Site state kept between sending hello and receiving welcome. */
export interface HelloState {
  readonly hello: Hello;
  readonly ephemeralSecret: Uint8Array;
  readonly signedBytes: Uint8Array;
}

/** Build the site's signed hello. */
export function createHello(identity: Identity, siteId: string, token?: string): HelloState {
  const eph = nacl.box.keyPair();
  const nonce = nacl.randomBytes(NONCE_BYTES);
  const tokenProof = token === undefined ? undefined : enrollmentTokenProof(token, tokenProofMessage(siteId, identity.publicKey, eph.publicKey, nonce));
  const signedBytes = helloSignedBytes(siteId, identity.publicKey, eph.publicKey, nonce, tokenProof);
  const hello: Hello = {
    v: PROTOCOL_VERSION,
    type: 'hello',
    siteId,
    identityKey: toBase64(identity.publicKey),
    ephemeralKey: toBase64(eph.publicKey),
    nonce: toBase64(nonce),
    ...(tokenProof === undefined ? {} : { tokenProof: toBase64(tokenProof) }),
    signature: toBase64(nacl.sign.detached(signedBytes, identity.secretKey)),
  };
  parseVersioned(hello, helloSchema, 'hello'); // validated on send too (an invalid site id fails here, not at the peer)
  return { hello, ephemeralSecret: eph.secretKey, signedBytes };
}

/** A hello whose signature verified (enrollment is checked separately by the caller). */
export interface VerifiedHello {
  readonly siteId: string;
  readonly identityKey: Uint8Array;
  readonly ephemeralKey: Uint8Array;
  /** Present when the site claims an enrollment token: check with `Enrollment.admit`. */
  readonly tokenProof?: { proof: Uint8Array; message: Uint8Array };
  readonly digest: Uint8Array;
}

/** Coordinator side: validate and verify an untrusted hello. Throws ProtocolError. */
export function verifyHello(raw: unknown): VerifiedHello {
  const hello = parseVersioned(raw, helloSchema, 'hello');
  if (hello.signature === undefined) throw new ProtocolError('unsigned', 'hello carries no signature');
  const identityKey = fromBase64(hello.identityKey, nacl.sign.publicKeyLength);
  const ephemeralKey = fromBase64(hello.ephemeralKey, nacl.box.publicKeyLength);
  const nonce = fromBase64(hello.nonce, NONCE_BYTES);
  const signature = fromBase64(hello.signature, nacl.sign.signatureLength);
  const tokenProof = hello.tokenProof === undefined ? undefined : fromBase64(hello.tokenProof, TOKEN_PROOF_BYTES);
  const signed = helloSignedBytes(hello.siteId, identityKey, ephemeralKey, nonce, tokenProof);
  if (!nacl.sign.detached.verify(signed, signature, identityKey)) {
    throw new ProtocolError('bad_signature', `hello signature of site ${hello.siteId} does not verify`);
  }
  return {
    siteId: hello.siteId,
    identityKey,
    ephemeralKey,
    ...(tokenProof === undefined ? {} : { tokenProof: { proof: tokenProof, message: tokenProofMessage(hello.siteId, identityKey, ephemeralKey, nonce) } }),
    digest: nacl.hash(concatBytes(signed, signature)),
  };
}

/** Coordinator side: answer a verified hello; returns the welcome and the session key. */
export function createWelcome(identity: Identity, hello: VerifiedHello): { welcome: Welcome; sessionKey: Uint8Array } {
  const eph = nacl.box.keyPair();
  const nonce = nacl.randomBytes(NONCE_BYTES);
  const signed = welcomeSignedBytes(hello.digest, identity.publicKey, eph.publicKey, nonce);
  const welcome: Welcome = {
    v: PROTOCOL_VERSION,
    type: 'welcome',
    coordinatorKey: toBase64(identity.publicKey),
    ephemeralKey: toBase64(eph.publicKey),
    nonce: toBase64(nonce),
    signature: toBase64(nacl.sign.detached(signed, identity.secretKey)),
  };
  parseVersioned(welcome, welcomeSchema, 'welcome');
  return { welcome, sessionKey: deriveKey(hello.ephemeralKey, eph.secretKey, signed) };
}

/** Site side: verify the welcome against the pinned coordinator key; returns the session key. */
export function verifyWelcome(raw: unknown, state: HelloState, pinnedCoordinatorKey: Uint8Array): Uint8Array {
  const welcome = parseVersioned(raw, welcomeSchema, 'welcome');
  if (welcome.signature === undefined) throw new ProtocolError('unsigned', 'welcome carries no signature');
  const coordinatorKey = fromBase64(welcome.coordinatorKey, nacl.sign.publicKeyLength);
  if (!bytesEqual(coordinatorKey, pinnedCoordinatorKey)) {
    throw new ProtocolError('wrong_key', 'coordinator identity key differs from the pinned key');
  }
  const ephemeralKey = fromBase64(welcome.ephemeralKey, nacl.box.publicKeyLength);
  const nonce = fromBase64(welcome.nonce, NONCE_BYTES);
  const signature = fromBase64(welcome.signature, nacl.sign.signatureLength);
  const helloSignature = fromBase64(state.hello.signature ?? '', nacl.sign.signatureLength);
  const digest = nacl.hash(concatBytes(state.signedBytes, helloSignature));
  const signed = welcomeSignedBytes(digest, coordinatorKey, ephemeralKey, nonce);
  if (!nacl.sign.detached.verify(signed, signature, pinnedCoordinatorKey)) {
    throw new ProtocolError('bad_signature', 'welcome signature does not verify under the pinned coordinator key');
  }
  return deriveKey(ephemeralKey, state.ephemeralSecret, signed);
}
