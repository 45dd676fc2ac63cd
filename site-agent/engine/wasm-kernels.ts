/**
 * Makes the tfjs `wasm` backend trainable: it ships no `Conv2DBackpropFilter` kernel (tfjs issue 8474),
 * so the gradient of tf.conv2d w.r.t. its filter throws there. We register one that builds the im2col
 * matrix of x directly in the wasm heap (NHWC: row = output pixel, column = (ky, kx, ci)) and hands
 * dW = col^T x dy to the wasm backend's own BatchMatMul kernel (XNNPACK-backed, SIMD), so the FLOPs run in
 * wasm and only the gather runs in JS. Large problems are split into row chunks so the im2col buffer
 * stays below ~32 MB; chunk results are summed with the wasm Add kernel. The input gradient and the
 * max-pool gradient are replaced too (see below: one slow, one wrong).
 */
import * as tf from '@tensorflow/tfjs-core';
import type { BackendWasm } from '@tensorflow/tfjs-backend-wasm';
import { maxPoolGradInto } from './grad-kernels-js.ts';

type KernelFunc = tf.KernelConfig['kernelFunc'];
type Args = Parameters<KernelFunc>[0];

let maxColFloats = 8 * 1024 * 1024;

/** Caps the im2col buffer (floats); exposed so tests can force the chunked path on small inputs. */
export function setWasmIm2colLimit(floats: number): void {
  if (!Number.isInteger(floats) || floats < 1) throw new RangeError(`im2col limit must be a positive integer, got ${floats}`);
  maxColFloats = floats;
}

function kernel(name: string): KernelFunc {
  const k = tf.getKernel(name, 'wasm');
  if (!k) throw new Error(`tfjs wasm backend has no kernel ${name}`);
  return k.kernelFunc;
}

/** dW[FH,FW,Cin,Cout] of a 2-D NHWC convolution, computed on the wasm backend. */
export const wasmConv2DBackpropFilter: KernelFunc = (args: Args) => {
  const backend = args.backend as BackendWasm;
  const { x, dy } = args.inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
  const { strides, pad, dataFormat, dimRoundingMode, filterShape } = args.attrs as unknown as tf.Conv2DBackpropFilterAttrs;
  const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
  if (fmt !== 'channelsLast') {
    throw new Error(`fedsfda wasm Conv2DBackpropFilter supports NHWC only (got dataFormat ${dataFormat})`);
  }
  if (x.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`fedsfda wasm Conv2DBackpropFilter needs float32 inputs (got ${x.dtype}, ${dy.dtype})`);
  }
  const c = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, fmt);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: Cin, outHeight: OH, outWidth: OW, outChannels: Cout } = c;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW, dilationHeight: DH, dilationWidth: DW } = c;
  const PT = c.padInfo.top, PL = c.padInfo.left;
  const K = FH * FW * Cin;
  const M = N * OH * OW;
  const chunkRows = Math.max(1, Math.min(M, Math.floor(maxColFloats / Math.max(1, K))));
  const matMul = kernel(tf.BatchMatMul);
  const add = kernel(tf.Add);
  let acc: tf.TensorInfo | null = null;
  for (let r0 = 0; r0 < M; r0 += chunkRows) {
    const rows = Math.min(chunkRows, M - r0);
    const col = backend.makeOutput([1, rows, K], 'float32');
    // typedArrayFromHeap after every allocation: the heap may have grown (detaching earlier views).
    const cv = backend.typedArrayFromHeap(col) as Float32Array;
    const xh = backend.typedArrayFromHeap(x) as Float32Array;
    for (let r = 0; r < rows; r++) {
      const m = r0 + r;
      const ox = m % OW, oy = Math.floor(m / OW) % OH, n = Math.floor(m / (OW * OH));
      let o = r * K;
      for (let ky = 0; ky < FH; ky++) {
        const iy = oy * SH + ky * DH - PT;
        for (let kx = 0; kx < FW; kx++, o += Cin) {
          const ix = ox * SW + kx * DW - PL;
          // Plain loops: Cin is small (1..64), where subarray()+set() per tap costs more than the copy.
          if (iy < 0 || iy >= H || ix < 0 || ix >= W) {
            for (let k = 0; k < Cin; k++) cv[o + k] = 0;
          } else {
            const src = ((n * H + iy) * W + ix) * Cin;
            for (let k = 0; k < Cin; k++) cv[o + k] = xh[src + k];
          }
        }
      }
    }
    // dy rows [r0, r0 + rows) as a [1, rows, Cout] view of dy's heap memory (no copy when it is all of dy).
    let dyPart: tf.TensorInfo;
    let ownsDy = false;
    if (rows === M) {
      dyPart = { dataId: dy.dataId, shape: [1, rows, Cout], dtype: 'float32' };
    } else {
      dyPart = backend.makeOutput([1, rows, Cout], 'float32');
      ownsDy = true;
      const dst = backend.typedArrayFromHeap(dyPart) as Float32Array;
      const dyh = backend.typedArrayFromHeap(dy) as Float32Array;
      dst.set(dyh.subarray(r0 * Cout, (r0 + rows) * Cout));
    }
    const part = matMul({ inputs: { a: col, b: dyPart }, backend, attrs: { transposeA: true, transposeB: false } }) as tf.TensorInfo;
    backend.disposeData(col.dataId);
    if (ownsDy) backend.disposeData(dyPart.dataId);
    if (acc === null) {
      acc = part;
    } else {
      const sum = add({ inputs: { a: acc, b: part }, backend, attrs: {} }) as tf.TensorInfo;
      backend.disposeData(acc.dataId);
      backend.disposeData(part.dataId);
      acc = sum;
    }
  }
  if (acc === null) {
    // M = 0 (empty batch): the gradient is zero.
    const z = backend.makeOutput(filterShape, 'float32');
    (backend.typedArrayFromHeap(z) as Float32Array).fill(0);
    return z;
  }
  return { dataId: acc.dataId, shape: filterShape, dtype: 'float32' };
};

/**
 * dx[N,H,W,Cin] of a 2-D NHWC convolution on wasm, replacing the stock kernel (~20x slower than its own
 * matMul, measured): gather, for every input pixel, the dy rows of the output pixels whose windows cover
 * it (FH*FW*Cout values, zeros where none), then one matMul with the per-tap transposed filter
 * [(ky,kx,co), ci]. A gather, so no scatter conflicts; chunked like the filter gradient.
 */
export const wasmConv2DBackpropInput: KernelFunc = (args: Args) => {
  const backend = args.backend as BackendWasm;
  const { dy, filter } = args.inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
  const { inputShape, strides, pad, dataFormat, dimRoundingMode } = args.attrs as unknown as tf.Conv2DBackpropInputAttrs;
  const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
  if (fmt !== 'channelsLast') throw new Error(`fedsfda wasm Conv2DBackpropInput supports NHWC only (got dataFormat ${dataFormat})`);
  if (dy.dtype !== 'float32' || filter.dtype !== 'float32') {
    throw new Error(`fedsfda wasm Conv2DBackpropInput needs float32 inputs (got ${dy.dtype}, ${filter.dtype})`);
  }
  const c = tf.backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, fmt);
  const { batchSize: N, inHeight: H, inWidth: W, inChannels: Cin, outHeight: OH, outWidth: OW, outChannels: Cout } = c;
  const { filterHeight: FH, filterWidth: FW, strideHeight: SH, strideWidth: SW, dilationHeight: DH, dilationWidth: DW } = c;
  const PT = c.padInfo.top, PL = c.padInfo.left;
  const F = FH * FW;
  const K = F * Cout;
  const M = N * H * W;
  const matMul = kernel(tf.BatchMatMul);
  const wt = backend.makeOutput([1, K, Cin], 'float32');
  {
    const wv = backend.typedArrayFromHeap(filter) as Float32Array;
    const tv = backend.typedArrayFromHeap(wt) as Float32Array;
    for (let f = 0; f < F; f++)
      for (let ci = 0; ci < Cin; ci++)
        for (let co = 0; co < Cout; co++) tv[(f * Cout + co) * Cin + ci] = wv[(f * Cin + ci) * Cout + co];
  }
  const chunkRows = Math.max(1, Math.min(M, Math.floor(maxColFloats / Math.max(1, K))));
  const single = chunkRows >= M;
  const out = single ? null : backend.makeOutput(inputShape, 'float32');
  let result: tf.TensorInfo | null = null;
  for (let r0 = 0; r0 < M; r0 += chunkRows) {
    const rows = Math.min(chunkRows, M - r0);
    const g = backend.makeOutput([1, rows, K], 'float32');
    const gv = backend.typedArrayFromHeap(g) as Float32Array;
    const dyv = backend.typedArrayFromHeap(dy) as Float32Array;
    for (let r = 0; r < rows; r++) {
      const m = r0 + r;
      const ix = m % W, iy = Math.floor(m / W) % H, n = Math.floor(m / (W * H));
      let o = r * K;
      for (let ky = 0; ky < FH; ky++) {
        const ty = iy + PT - ky * DH;
        const oy = ty / SH;
        const vy = ty >= 0 && ty % SH === 0 && oy < OH;
        for (let kx = 0; kx < FW; kx++, o += Cout) {
          const tx = ix + PL - kx * DW;
          const ox = tx / SW;
          if (vy && tx >= 0 && tx % SW === 0 && ox < OW) {
            const src = ((n * OH + oy) * OW + ox) * Cout;
            for (let k = 0; k < Cout; k++) gv[o + k] = dyv[src + k];
          } else {
            for (let k = 0; k < Cout; k++) gv[o + k] = 0;
          }
        }
      }
    }
    const part = matMul({ inputs: { a: g, b: wt }, backend, attrs: { transposeA: false, transposeB: false } }) as tf.TensorInfo;
    backend.disposeData(g.dataId);
    if (single) {
      result = part;
    } else if (out) {
      const dst = backend.typedArrayFromHeap(out) as Float32Array;
      dst.set(backend.typedArrayFromHeap(part) as Float32Array, r0 * Cin);
      backend.disposeData(part.dataId);
    }
  }
  backend.disposeData(wt.dataId);
  if (out) return out;
  if (result === null) {
    const z = backend.makeOutput(inputShape, 'float32');
    (backend.typedArrayFromHeap(z) as Float32Array).fill(0);
    return z;
  }
  return { dataId: result.dataId, shape: inputShape, dtype: 'float32' };
};

/**
 * Tile on wasm in JS, row by row: the stock kernel walks every element with generic index arithmetic and
 * was the third-largest cost of a U-Net step on wasm (batch-norm's gradient tiles 1/sqrt(var) to the
 * activation shape). Rows of the last dimension are copied (or broadcast) in one loop.
 */
export const wasmTile: KernelFunc = (args: Args) => {
  const backend = args.backend as BackendWasm;
  const { x } = args.inputs as { x: tf.TensorInfo };
  const { reps } = args.attrs as unknown as tf.TileAttrs;
  const rank = x.shape.length;
  if (rank === 0 || reps.length !== rank || (x.dtype !== 'float32' && x.dtype !== 'int32')) {
    throw new Error(`fedsfda wasm Tile needs rank >= 1, reps of the same rank and float32/int32 (got ${x.dtype}[${x.shape}], reps [${reps}])`);
  }
  const outShape = x.shape.map((d, i) => d * reps[i]);
  const out = backend.makeOutput(outShape, x.dtype);
  const o = backend.typedArrayFromHeap(out) as Float32Array | Int32Array;
  const v = backend.typedArrayFromHeap(x) as Float32Array | Int32Array;
  const inStrides = tf.util.computeStrides(x.shape);
  const n = outShape[rank - 1], nIn = x.shape[rank - 1];
  const rows = o.length / Math.max(1, n);
  for (let r = 0; r < rows; r++) {
    let rem = r, off = 0;
    for (let d = rank - 2; d >= 0; d--) {
      const c = rem % outShape[d];
      rem = Math.floor(rem / outShape[d]);
      off += (c % x.shape[d]) * inStrides[d];
    }
    const base = r * n;
    if (nIn === 1) {
      const val = v[off];
      for (let i = 0; i < n; i++) o[base + i] = val;
    } else {
      for (let i = 0; i < n; i++) o[base + i] = v[off + (i % nIn)];
    }
  }
  return out;
};

/** Replaces the wasm MaxPoolGrad, which drops gradients on non-square inputs (see grad-kernels-js.ts). */
export const wasmMaxPoolGrad: KernelFunc = (args: Args) => {
  const backend = args.backend as BackendWasm;
  const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
  const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.MaxPoolGradAttrs;
  if (input.shape.length !== 4 || input.dtype !== 'float32' || dy.dtype !== 'float32') {
    throw new Error(`fedsfda wasm MaxPoolGrad needs rank-4 float32 tensors (got ${input.dtype}[${input.shape}])`);
  }
  const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
  const out = backend.makeOutput(input.shape, 'float32');
  const dx = backend.typedArrayFromHeap(out) as Float32Array;
  dx.fill(0);
  maxPoolGradInto(backend.typedArrayFromHeap(dy) as Float32Array, backend.typedArrayFromHeap(input) as Float32Array, dx, info);
  return out;
};

let registered = false;

/** Registers the kernels the wasm backend lacks (or gets wrong) for training (idempotent). */
export function registerWasmTrainingKernels(): string[] {
  const added: string[] = [];
  if (!registered && tf.getKernel(tf.Conv2DBackpropFilter, 'wasm') === undefined) {
    tf.registerKernel({ kernelName: tf.Conv2DBackpropFilter, backendName: 'wasm', kernelFunc: wasmConv2DBackpropFilter });
    added.push(tf.Conv2DBackpropFilter);
  }
  if (!registered) {
    if (tf.getKernel(tf.MaxPoolGrad, 'wasm') !== undefined) tf.unregisterKernel(tf.MaxPoolGrad, 'wasm');
    tf.registerKernel({ kernelName: tf.MaxPoolGrad, backendName: 'wasm', kernelFunc: wasmMaxPoolGrad });
    added.push(tf.MaxPoolGrad);
    if (tf.getKernel(tf.Conv2DBackpropInput, 'wasm') !== undefined) tf.unregisterKernel(tf.Conv2DBackpropInput, 'wasm');
    tf.registerKernel({ kernelName: tf.Conv2DBackpropInput, backendName: 'wasm', kernelFunc: wasmConv2DBackpropInput });
    added.push(tf.Conv2DBackpropInput);
    if (tf.getKernel(tf.Tile, 'wasm') !== undefined) tf.unregisterKernel(tf.Tile, 'wasm');
    tf.registerKernel({ kernelName: tf.Tile, backendName: 'wasm', kernelFunc: wasmTile });
    added.push(tf.Tile);
  }
  registered = true;
  return added;
}
