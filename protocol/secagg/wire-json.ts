/**
 * SecAgg stage messages <-> JSON-safe objects, for carrying them inside sealed session messages
 * (`secaggIns` / `secaggRes` in protocol/messages.ts). Byte fields (keys, signatures, share ciphertexts, seeds)
 * become `{ "$b64": "..." }`; the one model-sized field, a masked vector (Uint32Array), never goes into JSON: it is
 * stripped here and travels as a chunked transfer (`maskedVectorBytes` / `maskedVectorFromBytes`).
 * Decoding never trusts the shape: the result is always re-validated with `parseSecAggInstruction/Reply`.
 */
import { SecAggError } from './errors.ts';
import type { MaskedVectorRes, SecAggInstruction, SecAggReply } from './messages.ts';
import { parseSecAggInstruction, parseSecAggReply } from './schemas.ts';

/** Deepest nesting a secagg message has (reply -> shares[] -> share -> bytes): anything deeper is refused. */
const MAX_DEPTH = 8;

function toJson(x: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new SecAggError('malformed-message', 'secagg message nested too deeply');
  if (x instanceof Uint8Array) return { $b64: Buffer.from(x.buffer, x.byteOffset, x.byteLength).toString('base64') };
  if (ArrayBuffer.isView(x)) throw new SecAggError('malformed-message', 'typed arrays other than bytes cannot travel as JSON');
  if (Array.isArray(x)) return x.map((v) => toJson(v, depth + 1));
  if (x !== null && typeof x === 'object') {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) out[k] = toJson(v, depth + 1);
    return out;
  }
  return x;
}

function fromJson(x: unknown, depth: number): unknown {
  if (depth > MAX_DEPTH) throw new SecAggError('malformed-message', 'secagg message nested too deeply');
  if (Array.isArray(x)) return x.map((v) => fromJson(v, depth + 1));
  if (x !== null && typeof x === 'object') {
    const keys = Object.keys(x);
    const b = (x as { $b64?: unknown }).$b64;
    if (keys.length === 1 && keys[0] === '$b64') {
      if (typeof b !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(b)) throw new SecAggError('malformed-message', 'bad base64 field');
      return new Uint8Array(Buffer.from(b, 'base64'));
    }
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(x)) out[k] = fromJson(v, depth + 1);
    return out;
  }
  return x;
}

/** A validated instruction as a JSON-safe object (validate on send). */
export function instructionToWire(ins: SecAggInstruction): Record<string, unknown> {
  return toJson(parseSecAggInstruction(ins), 0) as Record<string, unknown>;
}

/** Untrusted JSON -> a validated instruction (validate on receive). */
export function instructionFromWire(json: unknown): SecAggInstruction {
  return parseSecAggInstruction(fromJson(json, 0));
}

/**
 * A validated reply as a JSON-safe object. For a masked-vector reply the vector is returned separately (as bytes,
 * little-endian u32) so the caller can send it as a chunked transfer.
 */
export function replyToWire(reply: SecAggReply): { json: Record<string, unknown>; masked: Uint8Array | null } {
  const checked = parseSecAggReply(reply);
  if (checked.type === 'secagg/masked-vector') {
    const { masked, ...rest } = checked;
    return { json: toJson(rest, 0) as Record<string, unknown>, masked: maskedVectorBytes(masked) };
  }
  return { json: toJson(checked, 0) as Record<string, unknown>, masked: null };
}

/** Untrusted JSON (+ the transferred masked vector for that stage) -> a validated reply. */
export function replyFromWire(json: unknown, masked: Uint8Array | null): SecAggReply {
  const obj = fromJson(json, 0);
  if (obj !== null && typeof obj === 'object' && (obj as { type?: unknown }).type === 'secagg/masked-vector') {
    if (!masked) throw new SecAggError('malformed-message', 'masked-vector reply without its transfer');
    return parseSecAggReply({ ...(obj as object), masked: maskedVectorFromBytes(masked) } as MaskedVectorRes);
  }
  if (masked) throw new SecAggError('malformed-message', 'unexpected masked-vector transfer');
  return parseSecAggReply(obj);
}

/** A masked vector's bytes for the wire: u32 little-endian, explicitly (not the host's byte order). */
export function maskedVectorBytes(v: Uint32Array): Uint8Array {
  const out = new Uint8Array(v.length * 4);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < v.length; i++) dv.setUint32(i * 4, v[i], true);
  return out;
}

export function maskedVectorFromBytes(b: Uint8Array): Uint32Array {
  if (b.length % 4 !== 0) throw new SecAggError('malformed-message', `masked vector of ${b.length} bytes is not a whole number of u32`);
  const out = new Uint32Array(b.length / 4);
  const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
  for (let i = 0; i < out.length; i++) out[i] = dv.getUint32(i * 4, true);
  return out;
}
