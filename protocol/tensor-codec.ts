/**
 * Compact binary encoding of a WeightSet:
 *   magic "FSWS" | version u8 | tensorCount u32
 *   per tensor: nameLength u16 | name UTF-8 | dtype u8 (1 = float32) | rank u8 | dims u32 x rank | data (4 x size bytes)
 * All integers little-endian; data is raw float32 LE. Decoding validates every length against the bytes that are
 * actually left *before* allocating, so a hostile header cannot make us allocate gigabytes.
 */
import { sizeOfShape, type NamedTensor, type WeightSet } from './named-tensor.ts';
import { fromUtf8, utf8 } from './bytes.ts';
import { ProtocolError } from './errors.ts';

const MAGIC = [0x46, 0x53, 0x57, 0x53]; // "FSWS"
const VERSION = 1;
const DTYPE_FLOAT32 = 1;
const MAX_RANK = 8;
const MAX_NAME_BYTES = 256;
const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

export interface DecodeLimits {
  /** Refuse encodings larger than this (default 2 GiB - 1). */
  maxBytes?: number;
  maxTensors?: number;
}

/** Exact encoded size, so the encoder allocates once. */
export function encodedSize(ws: WeightSet): number {
  let n = 4 + 1 + 4;
  for (const t of ws) n += 2 + utf8(t.name).length + 1 + 1 + 4 * t.shape.length + 4 * t.data.length;
  return n;
}

export function encodeWeightSet(ws: WeightSet): Uint8Array {
  const out = new Uint8Array(encodedSize(ws));
  const dv = new DataView(out.buffer);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  dv.setUint32(5, ws.length, true);
  let o = 9;
  for (const t of ws) {
    const name = utf8(t.name);
    if (name.length === 0 || name.length > MAX_NAME_BYTES) throw new ProtocolError('codec', `tensor name length ${name.length} out of range`);
    if (t.shape.length > MAX_RANK) throw new ProtocolError('codec', `tensor ${t.name} has rank ${t.shape.length} > ${MAX_RANK}`);
    for (const d of t.shape) {
      if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) throw new ProtocolError('codec', `tensor ${t.name} has invalid dimension ${d}`);
    }
    if (sizeOfShape(t.shape) !== t.data.length) {
      throw new ProtocolError('codec', `tensor ${t.name}: shape [${t.shape.join(',')}] does not match ${t.data.length} values`);
    }
    dv.setUint16(o, name.length, true);
    o += 2;
    out.set(name, o);
    o += name.length;
    out[o++] = DTYPE_FLOAT32;
    out[o++] = t.shape.length;
    for (const d of t.shape) {
      dv.setUint32(o, d, true);
      o += 4;
    }
    if (LITTLE_ENDIAN) {
      out.set(new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength), o);
      o += t.data.byteLength;
    } else {
      for (const x of t.data) {
        dv.setFloat32(o, x, true);
        o += 4;
      }
    }
  }
  return out;
}

export function decodeWeightSet(bytes: Uint8Array, limits: DecodeLimits = {}): WeightSet {
  const maxBytes = limits.maxBytes ?? 0x7fffffff;
  const maxTensors = limits.maxTensors ?? 100_000;
  if (bytes.length > maxBytes) throw new ProtocolError('oversized', `encoded WeightSet of ${bytes.length} bytes exceeds ${maxBytes}`);
  if (bytes.length < 9) throw new ProtocolError('codec', 'encoded WeightSet shorter than its header');
  for (let i = 0; i < 4; i++) if (bytes[i] !== MAGIC[i]) throw new ProtocolError('codec', 'bad magic (not a fedsfda WeightSet)');
  if (bytes[4] !== VERSION) throw new ProtocolError('bad_version', `WeightSet codec version ${bytes[4]}`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const count = dv.getUint32(5, true);
  // Each tensor needs at least 2 + 1 + 1 + 1 header bytes: bound the count by the bytes present.
  if (count > maxTensors || count * 5 > bytes.length - 9) throw new ProtocolError('codec', `tensor count ${count} impossible for ${bytes.length} bytes`);
  const need = (o: number, n: number, what: string): void => {
    if (n > bytes.length - o) throw new ProtocolError('codec', `${what} runs past the end (${n} bytes needed at offset ${o})`);
  };
  const out: NamedTensor[] = [];
  const seen = new Set<string>();
  let o = 9;
  for (let i = 0; i < count; i++) {
    need(o, 2, 'name length');
    const nameLength = dv.getUint16(o, true);
    o += 2;
    if (nameLength === 0 || nameLength > MAX_NAME_BYTES) throw new ProtocolError('codec', `tensor ${i}: name length ${nameLength} out of range`);
    need(o, nameLength + 2, 'name');
    const name = fromUtf8(bytes.subarray(o, o + nameLength));
    o += nameLength;
    if (seen.has(name)) throw new ProtocolError('codec', `duplicate tensor name ${name}`);
    seen.add(name);
    const dtype = bytes[o++];
    if (dtype !== DTYPE_FLOAT32) throw new ProtocolError('codec', `tensor ${name}: unsupported dtype ${dtype}`);
    const rank = bytes[o++];
    if (rank > MAX_RANK) throw new ProtocolError('codec', `tensor ${name}: rank ${rank} > ${MAX_RANK}`);
    need(o, 4 * rank, 'shape');
    const shape: number[] = [];
    let size = 1;
    for (let d = 0; d < rank; d++) {
      const dim = dv.getUint32(o, true);
      o += 4;
      shape.push(dim);
      size *= dim; // exact in float64 while below 2^53; checked against remaining bytes right below
    }
    if (!Number.isSafeInteger(size) || size * 4 > bytes.length - o) {
      throw new ProtocolError('codec', `tensor ${name}: shape [${shape.join(',')}] needs more bytes than remain`);
    }
    const data = new Float32Array(size);
    if (LITTLE_ENDIAN) {
      new Uint8Array(data.buffer).set(bytes.subarray(o, o + 4 * size));
    } else {
      for (let k = 0; k < size; k++) data[k] = dv.getFloat32(o + 4 * k, true);
    }
    o += 4 * size;
    out.push({ name, shape, data });
  }
  if (o !== bytes.length) throw new ProtocolError('codec', `${bytes.length - o} trailing bytes after the last tensor`);
  return out;
}
