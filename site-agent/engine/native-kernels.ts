/**
 * Kernel implementations of the `fedsfda-native` backend. The backend is a MathBackendCPU, so tensors
 * live in its Float32Arrays; the native addon reads and writes those arrays in place (zero copy).
 * Each kernel handles the common case natively and defers anything unusual (NCHW, exotic activations,
 * odd broadcasting, non-float32) to the pure-JS cpu kernel, so results are always defined.
 */
import * as tf from '@tensorflow/tfjs-core';
import type { MathBackendCPU } from '@tensorflow/tfjs-backend-cpu';
import type { NativeAddon } from './native-addon.ts';
import { resizeNearestGradInto } from './grad-kernels-js.ts';

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

function convParams(c: tf.backend_util.Conv2DInfo): Int32Array {
  return Int32Array.from([
    c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth, c.outChannels,
    c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.dilationHeight, c.dilationWidth,
    c.padInfo.top, c.padInfo.left,
  ]);
}

function poolParams(c: tf.backend_util.Conv2DInfo): Int32Array {
  return Int32Array.from([
    c.batchSize, c.inHeight, c.inWidth, c.inChannels, c.outHeight, c.outWidth,
    c.filterHeight, c.filterWidth, c.strideHeight, c.strideWidth, c.dilationHeight, c.dilationWidth,
    c.padInfo.top, c.padInfo.left,
  ]);
}

const size = (s: number[]) => s.reduce((a, b) => a * b, 1);

/** Zero-sized problems (empty batch, 0 channels...) go to the cpu kernel; the addon wants positive sizes. */
const empty = (c: tf.backend_util.Conv2DInfo) => size(c.inShape) === 0 || size(c.outShape) === 0 || c.filterHeight * c.filterWidth === 0;

/** Builds the overriding kernel functions, closing over the loaded addon. */
export function nativeKernelFuncs(addon: NativeAddon): Record<string, KernelFunc> {
  const conv2d: KernelFunc = (args: Args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as MathBackendCPU;
    const { x, filter } = inputs as { x: tf.TensorInfo; filter: tf.TensorInfo };
    const { strides, pad, dataFormat, dilations, dimRoundingMode } = attrs as unknown as tf.Conv2DAttrs;
    const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
    const xv = f32(backend, x), wv = f32(backend, filter);
    if (fmt !== 'channelsLast' || !xv || !wv) return cpuKernel(tf.Conv2D)(args);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], strides, dilations, pad, dimRoundingMode, false, fmt);
    if (empty(info)) return cpuKernel(tf.Conv2D)(args);
    const out = new Float32Array(size(info.outShape));
    addon.conv2d(xv, wv, out, convParams(info), null, false);
    return backend.makeTensorInfo(info.outShape, 'float32', out);
  };

  const fusedConv2d: KernelFunc = (args: Args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as MathBackendCPU;
    const { x, filter, bias, preluActivationWeights } = inputs as Record<string, tf.TensorInfo | undefined>;
    const { strides, pad, dataFormat, dilations, dimRoundingMode, activation } = attrs as unknown as tf.FusedConv2DAttrs;
    const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
    const xv = x && f32(backend, x), wv = filter && f32(backend, filter);
    const bv = bias ? f32(backend, bias) : null;
    const outCh = filter ? filter.shape[3] : -1;
    const okBias = !bias || (bv !== null && size(bias.shape) === outCh);
    const okAct = activation === 'linear' || activation === 'relu' || activation === undefined;
    if (fmt !== 'channelsLast' || !x || !filter || !xv || !wv || !okBias || !okAct || preluActivationWeights) {
      return cpuKernel(tf.FusedConv2D)(args);
    }
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filter.shape as [number, number, number, number], strides, dilations, pad, dimRoundingMode, false, fmt);
    if (empty(info)) return cpuKernel(tf.FusedConv2D)(args);
    const out = new Float32Array(size(info.outShape));
    addon.conv2d(xv, wv, out, convParams(info), bv, activation === 'relu');
    return backend.makeTensorInfo(info.outShape, 'float32', out);
  };

  const conv2dBackpropInput: KernelFunc = (args: Args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as MathBackendCPU;
    const { dy, filter } = inputs as { dy: tf.TensorInfo; filter: tf.TensorInfo };
    const { inputShape, strides, pad, dataFormat, dimRoundingMode } = attrs as unknown as tf.Conv2DBackpropInputAttrs;
    const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
    const dyv = f32(backend, dy), wv = f32(backend, filter);
    if (fmt !== 'channelsLast' || !dyv || !wv) return cpuKernel(tf.Conv2DBackpropInput)(args);
    const info = tf.backend_util.computeConv2DInfo(inputShape, filter.shape as [number, number, number, number], strides, 1, pad, dimRoundingMode, false, fmt);
    if (empty(info)) return cpuKernel(tf.Conv2DBackpropInput)(args);
    const out = new Float32Array(size(info.inShape));
    addon.conv2dBackpropInput(dyv, wv, out, convParams(info));
    return backend.makeTensorInfo(info.inShape, 'float32', out);
  };

  const conv2dBackpropFilter: KernelFunc = (args: Args) => {
    const { inputs, attrs } = args;
    const backend = args.backend as MathBackendCPU;
    const { x, dy } = inputs as { x: tf.TensorInfo; dy: tf.TensorInfo };
    const { strides, pad, dataFormat, dimRoundingMode, filterShape } = attrs as unknown as tf.Conv2DBackpropFilterAttrs;
    const fmt = tf.backend_util.convertConv2DDataFormat(dataFormat);
    const xv = f32(backend, x), dyv = f32(backend, dy);
    if (fmt !== 'channelsLast' || !xv || !dyv) return cpuKernel(tf.Conv2DBackpropFilter)(args);
    const info = tf.backend_util.computeConv2DInfo(x.shape as [number, number, number, number], filterShape, strides, 1, pad, dimRoundingMode, false, fmt);
    if (empty(info)) return cpuKernel(tf.Conv2DBackpropFilter)(args);
    const out = new Float32Array(size(filterShape));
    addon.conv2dBackpropFilter(xv, dyv, out, convParams(info));
    return backend.makeTensorInfo(filterShape, 'float32', out);
  };

  /** Shared by BatchMatMul and _FusedMatMul; returns null when the case is left to the cpu kernel. */
  const matMulNative = (backend: MathBackendCPU, a: tf.TensorInfo, b: tf.TensorInfo, transposeA: boolean, transposeB: boolean, bias: Float32Array | null, relu: boolean): tf.TensorInfo | null => {
    const av = f32(backend, a), bv = f32(backend, b);
    if (!av || !bv || a.shape.length < 2 || b.shape.length < 2) return null;
    const ra = a.shape.length, rb = b.shape.length;
    const M = transposeA ? a.shape[ra - 1] : a.shape[ra - 2];
    const K = transposeA ? a.shape[ra - 2] : a.shape[ra - 1];
    const K2 = transposeB ? b.shape[rb - 1] : b.shape[rb - 2];
    const N = transposeB ? b.shape[rb - 2] : b.shape[rb - 1];
    if (K !== K2) return null;
    const outerA = a.shape.slice(0, -2), outerB = b.shape.slice(0, -2);
    const ab = size(outerA), bb = size(outerB);
    // Only equal outer shapes, or one side without batch, map onto the addon's (batch, broadcast) form.
    let outer: number[];
    if (ab === 1 && bb === 1) outer = outerA.length >= outerB.length ? outerA : outerB;
    else if (ab === 1) outer = outerB;
    else if (bb === 1) outer = outerA;
    else if (outerA.length === outerB.length && outerA.every((d, i) => d === outerB[i])) outer = outerA;
    else return null;
    if (bias && bias.length !== N) return null;
    const batch = Math.max(ab, bb);
    const out = new Float32Array(batch * M * N);
    addon.matMul(av, bv, out, Int32Array.from([batch, M, K, N, transposeA ? 1 : 0, transposeB ? 1 : 0, ab, bb]), bias, relu);
    return backend.makeTensorInfo([...outer, M, N], 'float32', out);
  };

  const batchMatMul: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { a, b } = args.inputs as { a: tf.TensorInfo; b: tf.TensorInfo };
    const { transposeA, transposeB } = args.attrs as unknown as tf.BatchMatMulAttrs;
    return matMulNative(backend, a, b, transposeA, transposeB, null, false) ?? cpuKernel(tf.BatchMatMul)(args);
  };

  const fusedMatMul: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { a, b, bias, preluActivationWeights } = args.inputs as Record<string, tf.TensorInfo | undefined>;
    const { transposeA, transposeB, activation } = args.attrs as unknown as tf._FusedMatMulAttrs;
    const okAct = activation === 'linear' || activation === 'relu' || activation === undefined;
    const bv = bias ? f32(backend, bias) : null;
    if (!a || !b || !okAct || preluActivationWeights || (bias && !bv)) return cpuKernel(tf._FusedMatMul)(args);
    return matMulNative(backend, a, b, transposeA, transposeB, bv, activation === 'relu') ?? cpuKernel(tf._FusedMatMul)(args);
  };

  const maxPool: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.MaxPoolAttrs;
    const xv = f32(backend, x);
    if (!xv || x.shape.length !== 4) return cpuKernel(tf.MaxPool)(args);
    const info = tf.backend_util.computePool2DInfo(x.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    if (empty(info)) return cpuKernel(tf.MaxPool)(args);
    const out = new Float32Array(size(info.outShape));
    addon.maxPool(xv, out, poolParams(info));
    return backend.makeTensorInfo(info.outShape, 'float32', out);
  };

  const maxPoolGrad: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { dy, input } = args.inputs as { dy: tf.TensorInfo; input: tf.TensorInfo };
    const { filterSize, strides, pad, dimRoundingMode } = args.attrs as unknown as tf.MaxPoolGradAttrs;
    const dyv = f32(backend, dy), xv = f32(backend, input);
    if (!dyv || !xv || input.shape.length !== 4) return cpuKernel(tf.MaxPoolGrad)(args);
    const info = tf.backend_util.computePool2DInfo(input.shape as [number, number, number, number], filterSize, strides, 1, pad, dimRoundingMode);
    if (empty(info)) return cpuKernel(tf.MaxPoolGrad)(args);
    const out = new Float32Array(size(input.shape));
    addon.maxPoolGrad(dyv, xv, out, poolParams(info));
    return backend.makeTensorInfo(input.shape, 'float32', out);
  };

  const relu: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { x } = args.inputs as { x: tf.TensorInfo };
    const xv = f32(backend, x);
    if (!xv) return cpuKernel(tf.Relu)(args);
    const out = new Float32Array(xv.length);
    addon.relu(xv, out);
    return backend.makeTensorInfo(x.shape, 'float32', out);
  };

  // Replaces the cpu kernel, which is wrong for batch > 1 (see grad-kernels-js.ts).
  const resizeNearestGrad: KernelFunc = (args: Args) => {
    const backend = args.backend as MathBackendCPU;
    const { images, dy } = args.inputs as { images: tf.TensorInfo; dy: tf.TensorInfo };
    const { alignCorners, halfPixelCenters } = args.attrs as unknown as tf.ResizeNearestNeighborGradAttrs & { halfPixelCenters?: boolean };
    const dyv = f32(backend, dy);
    if (!dyv || images.shape.length !== 4) return cpuKernel(tf.ResizeNearestNeighborGrad)(args);
    const out = new Float32Array(size(images.shape));
    resizeNearestGradInto(dyv, out, images.shape, dy.shape, alignCorners, halfPixelCenters ?? false);
    return backend.makeTensorInfo(images.shape, 'float32', out);
  };

  return {
    [tf.ResizeNearestNeighborGrad]: resizeNearestGrad,
    [tf.Conv2D]: conv2d,
    [tf.FusedConv2D]: fusedConv2d,
    [tf.Conv2DBackpropInput]: conv2dBackpropInput,
    [tf.Conv2DBackpropFilter]: conv2dBackpropFilter,
    [tf.BatchMatMul]: batchMatMul,
    [tf._FusedMatMul]: fusedMatMul,
    [tf.MaxPool]: maxPool,
    [tf.MaxPoolGrad]: maxPoolGrad,
    [tf.Relu]: relu,
  };
}
