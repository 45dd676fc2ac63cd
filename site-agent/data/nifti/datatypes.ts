/** The NIfTI datatypes fedsfda reads and writes (nifti1.h DT_* codes). */
export type NiftiDatatypeName = 'uint8' | 'int8' | 'int16' | 'uint16' | 'int32' | 'uint32' | 'int64' | 'uint64' | 'float32' | 'float64';

export interface NiftiDatatype {
  readonly name: NiftiDatatypeName;
  readonly code: number;
  readonly bytes: number;
  readonly integer: boolean;
  readonly min: number;
  readonly max: number;
}

export const NIFTI_DATATYPES: Readonly<Record<NiftiDatatypeName, NiftiDatatype>> = {
  uint8: { name: 'uint8', code: 2, bytes: 1, integer: true, min: 0, max: 255 },
  int8: { name: 'int8', code: 256, bytes: 1, integer: true, min: -128, max: 127 },
  int16: { name: 'int16', code: 4, bytes: 2, integer: true, min: -32768, max: 32767 },
  uint16: { name: 'uint16', code: 512, bytes: 2, integer: true, min: 0, max: 65535 },
  int32: { name: 'int32', code: 8, bytes: 4, integer: true, min: -2147483648, max: 2147483647 },
  uint32: { name: 'uint32', code: 768, bytes: 4, integer: true, min: 0, max: 4294967295 },
  // 64-bit integers (numpy's default int, so common in Python-written label maps): exact up to 2^53.
  int64: { name: 'int64', code: 1024, bytes: 8, integer: true, min: -(2 ** 63), max: 2 ** 63 - 1024 },
  uint64: { name: 'uint64', code: 1280, bytes: 8, integer: true, min: 0, max: 2 ** 64 - 2048 },
  float32: { name: 'float32', code: 16, bytes: 4, integer: false, min: -3.4028234663852886e38, max: 3.4028234663852886e38 },
  float64: { name: 'float64', code: 64, bytes: 8, integer: false, min: -Number.MAX_VALUE, max: Number.MAX_VALUE },
};

/** Names of codes that exist in the standard but are refused here, for clear error messages. */
const KNOWN_UNSUPPORTED: Record<number, string> = {
  0: 'none',
  1: 'binary',
  32: 'complex64',
  128: 'rgb24',
  1536: 'float128',
  1792: 'complex128',
  2048: 'complex256',
  2304: 'rgba32',
};

export function datatypeByCode(code: number): NiftiDatatype | undefined {
  for (const dt of Object.values(NIFTI_DATATYPES)) if (dt.code === code) return dt;
  return undefined;
}

/** For error messages: the datatypes that are read. */
export const SUPPORTED_DATATYPE_NAMES = Object.keys(NIFTI_DATATYPES).join(', ');

export function describeDatatypeCode(code: number): string {
  return KNOWN_UNSUPPORTED[code] ?? `unknown code ${code}`;
}

/** Values of little-endian bytes as numbers (the buffer must be aligned to the element size). */
export function typedView(dt: NiftiDatatype, buf: ArrayBuffer): ArrayLike<number> {
  switch (dt.name) {
    case 'uint8':
      return new Uint8Array(buf);
    case 'int8':
      return new Int8Array(buf);
    case 'int16':
      return new Int16Array(buf);
    case 'uint16':
      return new Uint16Array(buf);
    case 'int32':
      return new Int32Array(buf);
    case 'uint32':
      return new Uint32Array(buf);
    case 'int64':
      return Float64Array.from(new BigInt64Array(buf), Number);
    case 'uint64':
      return Float64Array.from(new BigUint64Array(buf), Number);
    case 'float32':
      return new Float32Array(buf);
    case 'float64':
      return new Float64Array(buf);
    default: {
      const never: never = dt.name;
      throw new Error(`unhandled datatype ${String(never)}`);
    }
  }
}

/** Little-endian bytes of `values` stored as the datatype (integer types: the caller has rounded and range-checked). */
export function encodeValues(dt: NiftiDatatype, values: ArrayLike<number>): Uint8Array {
  const n = values.length;
  let arr: { buffer: ArrayBufferLike };
  switch (dt.name) {
    case 'uint8':
      arr = Uint8Array.from(values);
      break;
    case 'int8':
      arr = Int8Array.from(values);
      break;
    case 'int16':
      arr = Int16Array.from(values);
      break;
    case 'uint16':
      arr = Uint16Array.from(values);
      break;
    case 'int32':
      arr = Int32Array.from(values);
      break;
    case 'uint32':
      arr = Uint32Array.from(values);
      break;
    case 'int64':
      arr = BigInt64Array.from({ length: n }, (_, i) => BigInt(values[i]));
      break;
    case 'uint64':
      arr = BigUint64Array.from({ length: n }, (_, i) => BigInt(values[i]));
      break;
    case 'float32':
      arr = Float32Array.from(values);
      break;
    case 'float64':
      arr = Float64Array.from(values);
      break;
    default: {
      const never: never = dt.name;
      throw new Error(`unhandled datatype ${String(never)}`);
    }
  }
  return new Uint8Array(arr.buffer as ArrayBuffer, 0, n * dt.bytes);
}

/** Reverses the byte order of every element in place (big-endian files on this little-endian platform). */
export function swapBytes(bytes: Uint8Array, width: number): void {
  if (width === 1) return;
  for (let i = 0; i + width <= bytes.length; i += width) {
    for (let a = i, b = i + width - 1; a < b; a++, b--) {
      const t = bytes[a];
      bytes[a] = bytes[b];
      bytes[b] = t;
    }
  }
}
