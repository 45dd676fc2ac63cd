import { describe, expect, it, beforeAll, afterAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { initEngine, resetEngine } from './select-backend.ts';
import { setWasmIm2colLimit, wasmConv2DBackpropFilter, wasmConv2DBackpropInput, wasmMaxPoolGrad, wasmTile } from './wasm-kernels.ts';
import { compareWithCpu, type InputSpec } from './kernel-compare.ts';

const s = (shape: number[], seed: number): InputSpec => ({ shape, seed });
type Case = [string, (...xs: tf.Tensor[]) => tf.Tensor, InputSpec[]];

const cases: Case[] = [
  ['3x3 same stride 1, batch 2, 3->5', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), [s([2, 7, 9, 3], 1), s([3, 3, 3, 5], 2)]],
  ['3x3 valid stride 1, 20->37', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'), [s([2, 6, 5, 20], 3), s([3, 3, 20, 37], 4)]],
  ['3x3 same stride 2, 4->6', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), [s([3, 9, 8, 4], 5), s([3, 3, 4, 6], 6)]],
  ['3x3 valid stride 2, 5->3', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'), [s([2, 9, 7, 5], 7), s([3, 3, 5, 3], 8)]],
  ['1x1 classifier 16->4', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), [s([2, 4, 4, 16], 9), s([1, 1, 16, 4], 10)]],
  // The other ops of a U-Net step, each on its own so that max-pool ties (e.g. after ReLU zeros, where
  // backends legitimately pick different sub-gradients) do not blur the comparison.
  ['batch norm (moments + batchNorm), train mode', (x, g, b) => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return tf.batchNorm(x as tf.Tensor4D, mean, variance, b, g, 1e-5);
  }, [s([3, 4, 5, 6], 43), s([6], 44), s([6], 45)]],
  ['relu', (x) => tf.relu(x), [s([2, 5, 5, 3], 42)]],
  // Non-square inputs: the stock wasm MaxPoolGrad got these wrong; ours replaces it.
  ['maxPool 2x2 stride 2, non-square', (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'), [s([2, 8, 6, 5], 40)]],
  ['maxPool 3x3 stride 2 same (overlapping)', (x) => tf.maxPool(x as tf.Tensor4D, 3, 2, 'same'), [s([2, 7, 5, 3], 41)]],
  ['conv2dTranspose 2x2 stride 2 (U-Net upsampling)', (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 8, 6, 3], 2, 'valid'), [s([2, 4, 3, 5], 46), s([2, 2, 3, 5], 47)]],
  // batch 1 only: tfjs cpu's ResizeNearestNeighborGrad (the reference) is wrong for batch > 1
  ['nearest upsampling (batch 1)', (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [8, 6]), [s([1, 4, 3, 5], 70)]],
  ['concat on channels', (a, b) => tf.concat([a, b], 3), [s([2, 3, 4, 5], 66), s([2, 3, 4, 2], 67)]],
  ['log softmax', (x) => tf.logSoftmax(x, -1), [s([2, 3, 4, 5], 71)]],
  ['tile (rank 3, mixed reps)', (x) => tf.tile(x, [2, 1, 3]), [s([2, 3, 4], 72)]],
  ['tile broadcast of a [1,1,1,C] vector', (x) => tf.tile(x, [2, 3, 4, 1]), [s([1, 1, 1, 5], 73)]],
];

describe('wasm backend made trainable (tolerance 1e-4 * (1 + max|ref|))', () => {
  beforeAll(async () => {
    resetEngine();
    await initEngine({ backend: 'wasm' });
  });
  afterAll(() => {
    setWasmIm2colLimit(8 * 1024 * 1024);
    resetEngine();
  });

  it('registers Conv2DBackpropFilter (and its replacements) for wasm', () => {
    expect(tf.getBackend()).toBe('wasm');
    expect(tf.getKernel(tf.Conv2DBackpropFilter, 'wasm')?.kernelFunc).toBe(wasmConv2DBackpropFilter);
    expect(tf.getKernel(tf.Conv2DBackpropInput, 'wasm')?.kernelFunc).toBe(wasmConv2DBackpropInput);
    expect(tf.getKernel(tf.MaxPoolGrad, 'wasm')?.kernelFunc).toBe(wasmMaxPoolGrad);
    expect(tf.getKernel(tf.Tile, 'wasm')?.kernelFunc).toBe(wasmTile);
  });

  it.each(cases)('%s: output and gradients match cpu', async (_name, fn, specs) => {
    const res = await compareWithCpu('wasm', fn, specs);
    for (const r of res) expect(r, `${r.what}: max |diff| ${r.maxAbsDiff} at scale ${r.scale}`).toMatchObject({ ok: true });
  });

  it.each([
    ['conv2d 3x3 same', (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), [s([2, 5, 6, 3], 13), s([3, 3, 3, 4], 14)]],
    ['conv2d 3x3 stride 2 valid', (x: tf.Tensor, w: tf.Tensor) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'), [s([2, 7, 6, 3], 15), s([3, 3, 3, 4], 16)]],
  ] as const)('the chunked im2col path (small buffer limit) gives the same gradients: %s', async (_n, fn, specs) => {
    setWasmIm2colLimit(100);  // forces many row chunks (summed with the wasm Add kernel for dW, copied for dx)
    try {
      const res = await compareWithCpu('wasm', fn as (...xs: tf.Tensor[]) => tf.Tensor, [...specs]);
      for (const r of res) expect(r, `${r.what}: max |diff| ${r.maxAbsDiff}`).toMatchObject({ ok: true });
    } finally {
      setWasmIm2colLimit(8 * 1024 * 1024);
    }
    expect(() => setWasmIm2colLimit(0)).toThrow(RangeError);
  });

  it('does not leak wasm tensors in a training step', async () => {
    await tf.setBackend('wasm');
    setWasmIm2colLimit(40);  // also exercise the chunked path's temporaries
    const x = tf.randomNormal([2, 6, 6, 3]) as tf.Tensor4D;
    const w = tf.variable(tf.randomNormal([3, 3, 3, 4]));
    const step = () => tf.tidy(() => {
      const g = tf.grad((v: tf.Tensor) => tf.sum(tf.conv2d(x, v as tf.Tensor4D, 1, 'same')))(w);
      w.assign(tf.sub(w, tf.mul(g, 0.1)));
    });
    step();  // first call may allocate engine-level constants
    const before = tf.memory().numTensors;
    const dataBefore = tf.engine().backend.numDataIds();
    step();
    step();
    setWasmIm2colLimit(8 * 1024 * 1024);
    expect(tf.memory().numTensors).toBe(before);
    expect(tf.engine().backend.numDataIds()).toBe(dataBefore);
    tf.dispose([x, w]);
  });
});
