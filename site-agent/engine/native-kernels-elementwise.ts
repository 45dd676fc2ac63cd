/**
 * Element-wise, reduction and data-movement kernels of the `fedsfda-native` backend. In a U-Net training
 * step these are not FLOP-heavy but they touch every activation several times (batch-norm forward and
 * backward, the gradients of mean/sum, the concat gradient), and the pure-JS cpu versions walk generic
 * index arithmetic per element; profiled, they took >95% of the step once convolutions were native.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './native-addon.ts';

type KernelFunc = tf.KernelConfig['kernelFunc'];
type Args = Parameters<KernelFunc>[0];

function f32(backend: MathBackendCPU, t: tf.TensorInfo): Float32Array | null {
  if (t.dtype !== 'float32') return null;
  const v = backend.data.get(t.dataId).values;
  return v instanceof Float32Array ? v : null;
}

function cpuKernel(name: string): KernelFunc {
  const k = tf.getKernel(name, 'cpu');
  if (!k) throw new Error(`tfjs cpu backend has no kernel ${name}`);
  return k.kernelFunc;
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);
const MAX_RANK = 8;

/** Right-aligned broadcast strides of `shape` within `out` (0 where broadcast). */
function broadcastStrides(shape: number[], out: number[]): number[] {
  const st = new Array<number>(out.length).fill(0);
  let s = 1;
  for (let i = shape.length - 1, d = out.length - 1; i >= 0; i--, d--) {
    st[d] = shape[i] === 1 ? 0 : s;
    s *= shape[i];
  }
  return st;
}

/**
 * Merges adjacent dims that are contiguous for both operands, so [8,64,64,16] (+) [16] becomes
 * [32768,16] and the native inner loop runs over long rows.
 */
export function collapseBroadcast(out: number[], as: number[], bs: number[]): { shape: number[]; as: number[]; bs: number[] } {
  const shape: number[] = [], ra: number[] = [], rb: number[] = [];
  for (let d = 0; d < out.length; d++) {
    if (out[d] === 1) continue;  // size-1 dims contribute nothing
    const last = shape.length - 1;
    if (last >= 0 && ra[last] === as[d] * out[d] && rb[last] === bs[d] * out[d]) {
      shape[last] *= out[d];
      ra[last] = as[d];
      rb[last] = bs[d];
    } else {
      shape.push(out[d]);
      ra.push(as[d]);
      rb.push(bs[d]);
    }
  }
  if (shape.length === 0) return { shape: [1], as: [0], bs: [0] };
  return { shape, as: ra, bs: rb };
}

const BINARY_OPS: Record<string, number> = {
  [tf.Add]: 0, [tf.Sub]: 1, [tf.Multiply]: 2, [tf.RealDiv]: 3, [tf.SquaredDifference]: 4, [tf.Maximum]: 5, [tf.Minimum]: 6,
};

export function nativeElementwiseKernelFuncs(addon: NativeAddon): Record<string, KernelFunc> {
  const binary = (name: string, op: number): KernelFunc => (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const av = f32(backend, a), bv = f32(backend, b);
    if (!av || !bv) return cpuKernel(name)(args);
    const outShape = tf.backend_util.assertAndGetBroadcastShape(a.shape, b.shape);
    const c = collapseBroadcast(outShape, broadcastStrides(a.shape, outShape), broadcastStrides(b.shape, outShape));
    if (c.shape.length > MAX_RANK) return cpuKernel(name)(args);
    const out = new Float32Array(size(outShape));
    addon.binary(op, av, bv, out, Int32Array.from(c.shape), Int32Array.from(c.as), Int32Array.from(c.bs));
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const reduce = (name: string, mean: boolean): KernelFunc => (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { axis, keepDims } = args.attrs as unknown as tf.SumAttrs;
    const xv = f32(backend, x);
    if (!xv || x.shape.length === 0) return cpuKernel(name)(args);
    const axes = tf.util.parseAxisParam(axis, x.shape).slice().sort((p, q) => p - q);
    // Only a contiguous run of axes maps onto [outer, red, inner]; anything else goes to the cpu kernel.
    if (axes.length === 0 || axes.some((v, i) => i > 0 && v !== axes[i - 1] + 1)) return cpuKernel(name)(args);
    const a0 = axes[0], a1 = axes[axes.length - 1];
    const outer = size(x.shape.slice(0, a0)), red = size(x.shape.slice(a0, a1 + 1)), inner = size(x.shape.slice(a1 + 1));
    if (red === 0) return cpuKernel(name)(args);
    let [outShape] = tf.backend_util.computeOutAndReduceShapes(x.shape, axes);
    if (keepDims) outShape = tf.backend_util.expandShapeToKeepDim(outShape, axes);
    const out = new Float32Array(outer * inner);
    addon.reduceSum(xv, out, outer, red, inner, mean ? 1 / red : 1);
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const sliceInfo = (backend: MathBackendCPU, x: tf.TensorInfo, xv: Float32Array, begin: number[], sz: number[]): tf.TensorInfo => {
    const out = new Float32Array(size(sz));
    if (out.length > 0) addon.slice(xv, out, Int32Array.from(x.shape), Int32Array.from(begin), Int32Array.from(sz));
    return backend.makeTensorInfo(sz, 'float32', out);
  };

  const slice: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { begin, size: sz } = args.attrs as unknown as tf.SliceAttrs;
    const xv = f32(backend, x);
    if (!xv || x.shape.length === 0 || x.shape.length > MAX_RANK) return cpuKernel(tf.Slice)(args);
    const [$begin, $size] = tf.slice_util.parseSliceParams(x as tf.Tensor, begin, sz);
    tf.slice_util.assertParamsValid(x as tf.Tensor, $begin, $size);
    return sliceInfo(backend, x, xv, $begin, $size);
  };

  const splitV: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { numOrSizeSplits, axis } = args.attrs as unknown as tf.SplitVAttrs;
    const xv = f32(backend, x);
    if (!xv || x.shape.length === 0 || x.shape.length > MAX_RANK) return cpuKernel(tf.SplitV)(args);
    const $axis = tf.util.parseAxisParam(axis, x.shape)[0];
    const sizes = tf.backend_util.prepareSplitSize(x as tf.Tensor, numOrSizeSplits, $axis);
    const begin = new Array<number>(x.shape.length).fill(0);
    return sizes.map((s) => {
      const sz = [...x.shape];
      sz[$axis] = s;
      const info = sliceInfo(backend, x, xv, [...begin], sz);
      begin[$axis] += s;
      return info;
    });
  };

  const tile: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { reps } = args.attrs as unknown as tf.TileAttrs;
    const xv = f32(backend, x);
    if (!xv || x.shape.length === 0 || x.shape.length > MAX_RANK || reps.length !== x.shape.length) return cpuKernel(tf.Tile)(args);
    const outShape = x.shape.map((d, i) => d * reps[i]);
    const out = new Float32Array(size(outShape));
    if (out.length > 0) addon.tile(xv, out, Int32Array.from(x.shape), Int32Array.from(outShape));
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const step: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { alpha } = args.attrs as unknown as tf.StepAttrs;
    const xv = f32(backend, x);
    if (!xv) return cpuKernel(tf.Step)(args);
    const out = new Float32Array(xv.length);
    addon.step(xv, out, alpha ?? 0);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  const square: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const xv = f32(backend, x);
    if (!xv) return cpuKernel(tf.Square)(args);
    const out = new Float32Array(xv.length);
    addon.square(xv, out);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  // Exp: logSoftmax's forward and gradient each run one over the logits (JS Math.exp was ~2.5 ms a call
  // on [8,64,64,4]).
  const exp: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const xv = f32(backend, x);
    if (!xv) return cpuKernel(tf.Exp)(args);
    const out = new Float32Array(xv.length);
    addon.exp(xv, out);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  // Floor (tf.dropout's keep mask, floor(u + keepProb)), Sqrt and Log: the cpu kernels' Math functions, each in its
  // own loop (the cpu backend's generic unary template calls one shared, megamorphic closure per element: ~2 ms a
  // call on a [8,48,48,8] latent).
  const jsUnary = (name: string, loop: (x: Float32Array, out: Float32Array) => void): KernelFunc => (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const xv = f32(backend, x);
    if (!xv) return cpuKernel(name)(args);
    const out = new Float32Array(xv.length);
    loop(xv, out);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };
  const floor = jsUnary(tf.Floor, (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.floor(x[i]);
  });
  const sqrt = jsUnary(tf.Sqrt, (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.sqrt(x[i]);
  });
  const log = jsUnary(tf.Log, (x, out) => {
    for (let i = 0; i < x.length; i++) out[i] = Math.log(x[i]);
  });

  // Softmax over the last axis: the cpu kernel's arithmetic to the bit (max, x - max rounded to float32, Math.exp
  // rounded to float32, a float64 running sum rounded to float32, the quotient rounded to float32), in one loop per
  // row instead of the cpu kernel's generic broadcast sub/div, which walk index arithmetic per element (18 ms a call
  // on [8,48,48,4], ~40% of a mean-teacher adaptation's teacher passes). JS Math.exp, not the addon's expf, so that
  // every softmax stays what it was.
  const softmax: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { logits } = args.inputs as { logits: tf.TensorInfo };
    const { dim } = args.attrs as unknown as tf.SoftmaxAttrs;
    const xv = f32(backend, logits);
    const rank = logits.shape.length;
    const k = rank > 0 ? logits.shape[rank - 1] : 0;
    if (!xv || k === 0 || (dim !== -1 && dim !== rank - 1)) return cpuKernel(tf.Softmax)(args);
    const out = new Float32Array(xv.length);
    for (let off = 0; off < xv.length; off += k) {
      let m = xv[off];
      for (let j = 0; j < k; j++) {
        const v = xv[off + j];
        if (Number.isNaN(v) || v > m) m = v;
      }
      let s = 0;
      for (let j = 0; j < k; j++) {
        out[off + j] = Math.exp(Math.fround(xv[off + j] - m));
        s += out[off + j];
      }
      const sum = Math.fround(s);
      for (let j = 0; j < k; j++) out[off + j] = out[off + j] / sum;
    }
    return backend.makeTensorInfo(logits.shape, 'float32', out);
  };

  const batchNorm: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x, mean, variance, offset, scale } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { varianceEpsilon } = args.attrs as unknown as tf.FusedBatchNormAttrs;
    const xv = x && f32(backend, x), mv = mean && f32(backend, mean), vv = variance && f32(backend, variance);
    const ov = offset ? f32(backend, offset) : null, sv = scale ? f32(backend, scale) : null;
    const lengthsOk = [mv, vv, ov, sv].every((a) => a === null || a === undefined || a.length > 0);
    if (!x || !xv || !mv || !vv || (offset && !ov) || (scale && !sv) || !lengthsOk) return cpuKernel(tf.FusedBatchNorm)(args);
    const out = new Float32Array(xv.length);
    addon.batchNorm(xv, out, mv, vv, ov, sv, varianceEpsilon ?? 0.001);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  const concat: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const inputs = args.inputs as unknown as tf.TensorInfo[];
    const { axis } = args.attrs as unknown as tf.ConcatAttrs;
    const vals = inputs.map((t) => f32(backend, t));
    if (inputs.length === 0 || vals.some((v) => v === null) || inputs[0].shape.length === 0) return cpuKernel(tf.Concat)(args);
    const $axis = tf.util.parseAxisParam(axis, inputs[0].shape)[0];
    const outShape = tf.backend_util.computeOutShape(inputs.map((t) => t.shape), $axis);
    // [outer, inner_i] views: everything before the axis is `outer`, the rest is each input's row.
    const outer = size(outShape.slice(0, $axis));
    const outInner = size(outShape.slice($axis));
    const out = new Float32Array(outer * outInner);
    let offset = 0;
    inputs.forEach((t, i) => {
      const inner = size(t.shape.slice($axis));
      if (inner > 0) addon.placeRows(vals[i] as Float32Array, out, outer, inner, outInner, offset);
      offset += inner;
    });
    return backend.makeTensorInfo(outShape, 'float32', out);
  };

  const funcs: Record<string, KernelFunc> = {
    [tf.Concat]: concat,
    [tf.Square]: square,
    [tf.Exp]: exp,
    [tf.Softmax]: softmax,
    [tf.Floor]: floor,
    [tf.Sqrt]: sqrt,
    [tf.Log]: log,
    [tf.FusedBatchNorm]: batchNorm,
    [tf.Sum]: reduce(tf.Sum, false),
    [tf.Mean]: reduce(tf.Mean, true),
    [tf.Slice]: slice,
    [tf.SplitV]: splitV,
    [tf.Tile]: tile,
    [tf.Step]: step,
  };
  for (const [name, op] of Object.entries(BINARY_OPS)) funcs[name] = binary(name, op);
  return funcs;
}
