import { describe, expect, it } from 'vitest';
import { decodeWeightSet, encodeWeightSet, encodedSize } from './tensor-codec.ts';
import { ProtocolError } from './errors.ts';
import type { WeightSet } from './named-tensor.ts';

const ws: WeightSet = [
  { name: 'enc1.conv1.w', shape: [3, 3, 1, 2], data: Float32Array.from({ length: 18 }, (_, i) => i * 0.5 - 3) },
  { name: 'enc1.bn1.mean', shape: [2], data: new Float32Array([Number.MIN_VALUE, -0]) },
  { name: 'scalar', shape: [], data: new Float32Array([42]) },
  { name: 'empty', shape: [0, 4], data: new Float32Array(0) },
];

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ProtocolError);
    return (e as ProtocolError).code;
  }
  return 'no error';
}

describe('tensor codec', () => {
  it('round-trips names, shapes and exact float32 bits', () => {
    const bytes = encodeWeightSet(ws);
    expect(bytes.length).toBe(encodedSize(ws));
    const back = decodeWeightSet(bytes);
    expect(back.map((t) => t.name)).toEqual(ws.map((t) => t.name));
    expect(back.map((t) => t.shape)).toEqual(ws.map((t) => t.shape));
    back.forEach((t, i) => expect(new Uint8Array(t.data.buffer)).toEqual(new Uint8Array(ws[i].data.buffer)));
  });

  it('is compact: header overhead is a few bytes per tensor', () => {
    const big: WeightSet = [{ name: 'w', shape: [1000], data: new Float32Array(1000) }];
    expect(encodeWeightSet(big).length).toBe(9 + 2 + 1 + 1 + 1 + 4 + 4000);
  });

  it('refuses to encode a shape that does not match the data', () => {
    expect(codeOf(() => encodeWeightSet([{ name: 'w', shape: [3], data: new Float32Array(2) }]))).toBe('codec');
  });

  it('refuses hostile lengths before allocating', () => {
    const bytes = encodeWeightSet([{ name: 'w', shape: [4], data: new Float32Array(4) }]);
    const dv = new DataView(bytes.buffer);
    // Tensor count of 2^32-1 with a few bytes of payload.
    const manyTensors = new Uint8Array(bytes);
    new DataView(manyTensors.buffer).setUint32(5, 0xffffffff, true);
    expect(codeOf(() => decodeWeightSet(manyTensors))).toBe('codec');
    // A dimension of 2^32-1 (16 GiB of floats) in a 30-byte message.
    const hugeDim = new Uint8Array(bytes);
    new DataView(hugeDim.buffer).setUint32(9 + 2 + 1 + 1 + 1, 0xffffffff, true);
    expect(codeOf(() => decodeWeightSet(hugeDim))).toBe('codec');
    // A name length of 60000 bytes (limit 256).
    const names = new Uint8Array(bytes);
    new DataView(names.buffer).setUint16(9, 60000, true);
    expect(codeOf(() => decodeWeightSet(names))).toBe('codec');
    expect(dv.getUint32(5, true)).toBe(1);
  });

  it('refuses truncation, trailing bytes, bad magic, version, dtype, duplicates and size limits', () => {
    const bytes = encodeWeightSet(ws);
    expect(codeOf(() => decodeWeightSet(bytes.subarray(0, bytes.length - 1)))).toBe('codec');
    expect(codeOf(() => decodeWeightSet(new Uint8Array([...bytes, 0])))).toBe('codec');
    const magic = new Uint8Array(bytes);
    magic[0] = 0;
    expect(codeOf(() => decodeWeightSet(magic))).toBe('codec');
    const version = new Uint8Array(bytes);
    version[4] = 9;
    expect(codeOf(() => decodeWeightSet(version))).toBe('bad_version');
    const dtype = new Uint8Array(bytes);
    dtype[9 + 2 + 'enc1.conv1.w'.length] = 7;
    expect(codeOf(() => decodeWeightSet(dtype))).toBe('codec');
    const dup = encodeWeightSet([ws[2], ws[2]]);
    expect(codeOf(() => decodeWeightSet(dup))).toBe('codec');
    expect(codeOf(() => decodeWeightSet(bytes, { maxBytes: 10 }))).toBe('oversized');
    expect(codeOf(() => decodeWeightSet(new Uint8Array(3)))).toBe('codec');
  });
});
