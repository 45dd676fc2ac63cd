/**
 * acc <- acc +/- src over Z_2^32, four words per instruction (WebAssembly SIMD, i32x4.add / i32x4.sub).
 *
 * Folding masks is the secure round's inner loop: a site adds k + 1 model-length keystreams, the coordinator adds
 * n masked vectors and subtracts the self masks. A JS typed-array loop costs ~1.4 ns per word here, four times
 * what libsodium needs to generate the keystream word; the SIMD loop brings the fold under the generation cost.
 * The module is 120 bytes written out below (no toolchain, no build output in the repository); when the runtime
 * has no WebAssembly SIMD the same interface runs a JS loop. Both are tested against each other (u32-simd.test.ts).
 *
 * Memory layout: one 128 KB linear memory, acc at [0, 64 KB), src at [64 KB, 128 KB); callers copy a chunk in,
 * fold any number of sources into it, and copy it out, so each chunk of the target crosses main memory once.
 */

/** Words per chunk (64 KB per buffer). */
export const CHUNK_WORDS = 16_384;
const CHUNK_BYTES = CHUNK_WORDS * 4;

export interface U32Folder {
  readonly simd: boolean;
  /** Accumulator chunk (CHUNK_WORDS words). */
  readonly acc: Uint32Array;
  /** Source chunk (CHUNK_WORDS words); `srcBytes` is the same memory as bytes, for keystream generators. */
  readonly src: Uint32Array;
  readonly srcBytes: Uint8Array;
  /** acc[0..m) <- acc[0..m) + sign * src[0..m) (mod 2^32), m <= CHUNK_WORDS. */
  fold(m: number, sign: 1 | -1): void;
}

/**
 * Body of `fold(acc, src, nbytes)`: for (i = 0; i < nbytes; i += 16) store(acc + i, OP(load(acc + i), load(src + i))).
 * Locals: params 0 = acc, 1 = src, 2 = nbytes; local 3 = i.
 */
function foldBody(simdOp: readonly number[]): number[] {
  return [
    0x01, 0x01, 0x7f, //                       one declared local: i32 (i)
    0x02, 0x40, 0x03, 0x40, //                 block, loop
    0x20, 0x03, 0x20, 0x02, 0x4f, 0x0d, 0x01, // if (i >= nbytes) break
    0x20, 0x00, 0x20, 0x03, 0x6a, //           address acc + i (for the store)
    0x20, 0x00, 0x20, 0x03, 0x6a, 0xfd, 0x00, 0x02, 0x00, // v128.load acc + i
    0x20, 0x01, 0x20, 0x03, 0x6a, 0xfd, 0x00, 0x02, 0x00, // v128.load src + i
    0xfd, ...simdOp, //                         i32x4.add | i32x4.sub
    0xfd, 0x0b, 0x02, 0x00, //                 v128.store
    0x20, 0x03, 0x41, 0x10, 0x6a, 0x21, 0x03, // i += 16
    0x0c, 0x00, 0x0b, 0x0b, 0x0b, //           continue; end loop, block, function
  ];
}

function section(id: number, bytes: readonly number[]): number[] {
  if (bytes.length > 127) throw new Error('section too long for a one-byte LEB128 size');
  return [id, bytes.length, ...bytes];
}

function moduleBytes(): Uint8Array<ArrayBuffer> {
  const name = (s: string) => [s.length, ...Buffer.from(s, 'ascii')];
  const add = foldBody([0xae, 0x01]); // i32x4.add = 0xfd 174
  const sub = foldBody([0xb1, 0x01]); // i32x4.sub = 0xfd 177
  return new Uint8Array([
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // "\0asm", version 1
    ...section(1, [0x01, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00]), // type 0: (i32, i32, i32) -> ()
    ...section(3, [0x02, 0x00, 0x00]), // two functions of type 0
    ...section(5, [0x01, 0x00, 0x02]), // one memory, 2 pages (128 KB), no maximum
    ...section(7, [0x03, ...name('mem'), 0x02, 0x00, ...name('add'), 0x00, 0x00, ...name('sub'), 0x00, 0x01]),
    ...section(10, [0x02, add.length, ...add, sub.length, ...sub]),
  ]);
}

function wasmFolder(): U32Folder | null {
  if (process.env.FEDSFDA_SIMD === 'off') return null;
  try {
    const instance = new WebAssembly.Instance(new WebAssembly.Module(moduleBytes()));
    const { mem, add, sub } = instance.exports as {
      mem: WebAssembly.Memory;
      add: (acc: number, src: number, nbytes: number) => void;
      sub: (acc: number, src: number, nbytes: number) => void;
    };
    // The memory never grows, so these views stay attached.
    const acc = new Uint32Array(mem.buffer, 0, CHUNK_WORDS);
    const src = new Uint32Array(mem.buffer, CHUNK_BYTES, CHUNK_WORDS);
    return {
      simd: true,
      acc,
      src,
      srcBytes: new Uint8Array(mem.buffer, CHUNK_BYTES, CHUNK_BYTES),
      fold(m, sign) {
        const m4 = m & ~3;
        (sign === 1 ? add : sub)(0, CHUNK_BYTES, 4 * m4);
        if (sign === 1) for (let w = m4; w < m; w++) acc[w] += src[w];
        else for (let w = m4; w < m; w++) acc[w] -= src[w];
      },
    };
  } catch {
    return null; // no WebAssembly SIMD in this runtime
  }
}

function jsFolder(): U32Folder {
  const acc = new Uint32Array(CHUNK_WORDS);
  const src = new Uint32Array(CHUNK_WORDS);
  return {
    simd: false,
    acc,
    src,
    srcBytes: new Uint8Array(src.buffer),
    fold(m, sign) {
      if (sign === 1) for (let w = 0; w < m; w++) acc[w] += src[w];
      else for (let w = 0; w < m; w++) acc[w] -= src[w];
    },
  };
}

let shared: U32Folder | null = null;

/** The process's folder (SIMD when available). Not re-entrant: callers use it synchronously, chunk by chunk. */
export function u32Folder(): U32Folder {
  shared ??= wasmFolder() ?? jsFolder();
  return shared;
}

/** A folder with the JS loop, whatever the runtime supports (tests compare the two). */
export function jsU32Folder(): U32Folder {
  return jsFolder();
}

/** target <- target + sign * source (mod 2^32), element-wise, chunk by chunk through `folder`. */
export function foldInto(target: Uint32Array, source: Uint32Array, sign: 1 | -1, folder: U32Folder = u32Folder()): void {
  if (source.length !== target.length) throw new RangeError(`fold of ${source.length} words into ${target.length}`);
  for (let pos = 0; pos < target.length; pos += CHUNK_WORDS) {
    const m = Math.min(CHUNK_WORDS, target.length - pos);
    folder.acc.set(target.subarray(pos, pos + m));
    folder.src.set(source.subarray(pos, pos + m));
    folder.fold(m, sign);
    target.set(folder.acc.subarray(0, m), pos);
  }
}
