import { describe, expect, it, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { Worker } from 'node:worker_threads';
import { loadNativeAddonChecked, NATIVE_ADDON_PATH } from './native-addon.ts';
import { NATIVE_BACKEND, registerNativeBackend } from './native-backend.ts';
import { compareWithCpu, type InputSpec } from './kernel-compare.ts';
import { collapseBroadcast } from './native-kernels-elementwise.ts';
import { createReferenceParams, randomBatch, referenceForward, softmaxCrossEntropy } from './bench/reference-unet.ts';

const load = loadNativeAddonChecked();  // throws under FEDSFDA_REQUIRE_NATIVE=1 when the addon is unusable
if (!load.ok) {
  // Visible in the test output: the build step was not run (node scripts/build-native.mjs).
  console.warn(`SKIPPING native kernel tests: ${load.reason}`);
}
const d = load.ok ? describe : describe.skip;

// The optional 4th entry `false` skips gradients where tfjs's own gradient function fails on every backend
// (BatchMatMul and SquaredDifference gradients do not reduce broadcast dims in tfjs-core 4.22).
type Case = [string, (...xs: tf.Tensor[]) => tf.Tensor, InputSpec[], boolean?];
const s = (shape: number[], seed: number): InputSpec => ({ shape, seed });

const convCases: Case[] = [
  ['3x3 same stride 1, batch 2, 3->5', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), [s([2, 7, 9, 3], 1), s([3, 3, 3, 5], 2)]],
  ['3x3 valid stride 1, 20->37', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'valid'), [s([2, 6, 5, 20], 3), s([3, 3, 20, 37], 4)]],
  ['3x3 same stride 2, 4->6', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'same'), [s([3, 9, 8, 4], 5), s([3, 3, 4, 6], 6)]],
  ['3x3 valid stride 2, 5->3', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 2, 'valid'), [s([2, 9, 7, 5], 7), s([3, 3, 5, 3], 8)]],
  ['1x1 classifier 16->4', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same'), [s([2, 4, 4, 16], 9), s([1, 1, 16, 4], 10)]],
  // Forward only: tfjs's conv2d gradient requires dilation 1 (it throws otherwise, on every backend).
  ['3x3 dilation 2, same (forward)', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, 'same', 'NHWC', 2), [s([2, 9, 8, 3], 81), s([3, 3, 3, 4], 82)], false],
  ['5x3 kernel, explicit padding', (x, w) => tf.conv2d(x as tf.Tensor4D, w as tf.Tensor4D, 1, [[0, 0], [2, 1], [0, 2], [0, 0]]), [s([1, 6, 6, 2], 11), s([5, 3, 2, 3], 12)]],
  ['conv2dTranspose 2x2 stride 2 (U-Net upsampling)', (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 8, 6, 3], 2, 'valid'), [s([2, 4, 3, 5], 16), s([2, 2, 3, 5], 17)]],
  // Non-overlapping windows (stride == filter) take the tiled input-gradient path: also with rows the
  // windows never reach (9x7 output from 4x3), a 3x3 stride 3 filter, and several row blocks with a tail.
  ['conv2dTranspose 2x2 stride 2 into 9x7 (uncovered last row/column)', (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 9, 7, 3], 2, 'valid'), [s([2, 4, 3, 5], 83), s([2, 2, 3, 5], 84)]],
  ['conv2dTranspose 3x3 stride 3', (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [1, 9, 6, 4], 3, 'valid'), [s([1, 3, 2, 6], 85), s([3, 3, 4, 6], 86)]],
  ['conv2dTranspose 2x2 stride 2, 270 input pixels (several row blocks)', (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [3, 20, 18, 7], 2, 'valid'), [s([3, 10, 9, 9], 87), s([2, 2, 7, 9], 88)]],
  ['conv2dTranspose 2x2 stride 2 same on odd output (general path)', (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [1, 7, 5, 3], 2, 'same'), [s([1, 4, 3, 5], 89), s([2, 2, 3, 5], 92)]],
  ['conv2dTranspose 3x3 stride 1 same', (x, w) => tf.conv2dTranspose(x as tf.Tensor4D, w as tf.Tensor4D, [2, 5, 4, 6], 1, 'same'), [s([2, 5, 4, 3], 18), s([3, 3, 6, 3], 19)]],
  ['fused conv2d + bias + relu', (x, w, b) => tf.fused.conv2d({ x: x as tf.Tensor4D, filter: w as tf.Tensor4D, strides: 1, pad: 'same', bias: b, activation: 'relu' }), [s([2, 5, 5, 3], 13), s([3, 3, 3, 7], 14), s([7], 15)]],
];

const matmulCases: Case[] = [
  ['matMul 2-D', (a, b) => tf.matMul(a, b), [s([7, 5], 20), s([5, 33], 21)]],
  ['matMul transposeA', (a, b) => tf.matMul(a, b, true, false), [s([5, 7], 22), s([5, 9], 23)]],
  ['matMul transposeB', (a, b) => tf.matMul(a, b, false, true), [s([7, 5], 24), s([9, 5], 25)]],
  ['matMul both transposed', (a, b) => tf.matMul(a, b, true, true), [s([5, 7], 26), s([9, 5], 27)]],
  ['batched matMul', (a, b) => tf.matMul(a, b), [s([3, 4, 6], 28), s([3, 6, 17], 29)]],
  ['batched matMul, broadcast b', (a, b) => tf.matMul(a, b), [s([3, 4, 6], 30), s([1, 6, 5], 31)], false],
  ['fused matMul + bias + relu', (a, b, c) => tf.fused.matMul({ a, b, bias: c, activation: 'relu' }), [s([8, 6], 32), s([6, 19], 33), s([19], 34)]],
];

const otherCases: Case[] = [
  ['maxPool 2x2 stride 2 valid', (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'), [s([2, 8, 6, 5], 40)]],
  ['maxPool 3x3 stride 2 same (overlapping)', (x) => tf.maxPool(x as tf.Tensor4D, 3, 2, 'same'), [s([2, 7, 7, 3], 41)]],
  ['relu', (x) => tf.relu(x), [s([2, 5, 5, 3], 42)]],
  ['batch norm (moments + batchNorm), train mode', (x, g, b) => {
    const { mean, variance } = tf.moments(x, [0, 1, 2]);
    return tf.batchNorm(x as tf.Tensor4D, mean, variance, b, g, 1e-5);
  }, [s([3, 4, 5, 6], 43), s([6], 44), s([6], 45)]],
  ['add broadcast over channels', (a, b) => tf.add(a, b), [s([2, 3, 4, 5], 50), s([5], 51)]],
  ['sub broadcast [2,1,4,1]', (a, b) => tf.sub(a, b), [s([2, 3, 4, 5], 52), s([2, 1, 4, 1], 53)]],
  ['mul same shape', (a, b) => tf.mul(a, b), [s([2, 3, 4, 5], 54), s([2, 3, 4, 5], 55)]],
  ['div by broadcast row', (a, b) => tf.div(a, tf.add(tf.abs(b), 1)), [s([4, 5], 56), s([4, 1], 57)]],
  ['squaredDifference', (a, b) => tf.squaredDifference(a, b), [s([3, 4], 58), s([1, 4], 59)], false],
  ['squaredDifference same shape', (a, b) => tf.squaredDifference(a, b), [s([3, 4], 58), s([3, 4], 59)]],
  ['maximum / minimum', (a, b) => tf.add(tf.maximum(a, b), tf.minimum(a, b)), [s([3, 4], 60), s([3, 4], 61)]],
  ['sum over N,H,W', (x) => tf.sum(x, [0, 1, 2]), [s([2, 3, 4, 5], 62)]],
  ['mean over last axis, keepDims', (x) => tf.mean(x, -1, true), [s([2, 3, 4, 5], 63)]],
  ['sum over middle axes', (x) => tf.sum(x, [1, 2]), [s([2, 3, 4, 5], 64)]],
  ['sum over non-contiguous axes (cpu fallback)', (x) => tf.sum(x, [0, 2]), [s([2, 3, 4, 5], 65)]],
  ['concat on channels (split gradient)', (a, b) => tf.concat([a, b], 3), [s([2, 3, 4, 5], 66), s([2, 3, 4, 2], 67)]],
  ['concat of three on axis 1', (a, b, c) => tf.concat([a, b, c], 1), [s([2, 3, 4], 74), s([2, 1, 4], 75), s([2, 2, 4], 76)]],
  // >= 2^20 elements: the multi-threaded paths of the memory-bound kernels (smaller ones run serially).
  ['large: BN-like broadcast arithmetic + channel sums (parallel path)', (a, b) => tf.sum(tf.mul(tf.sub(a, b), tf.relu(a)), [0, 1, 2]), [s([4, 64, 64, 64], 77), s([64], 78)]],
  ['large: concat + maxPool + mean (parallel path)', (a, b) => tf.mean(tf.maxPool(tf.concat([a, b], 3) as tf.Tensor4D, 2, 2, 'valid'), -1), [s([4, 64, 64, 40], 79), s([4, 64, 64, 24], 80)]],
  ['slice', (x) => tf.slice(x, [1, 0, 1, 2], [1, 3, 2, 3]), [s([2, 3, 4, 5], 68)]],
  ['tile', (x) => tf.tile(x, [2, 1, 3]), [s([2, 3, 4], 69)]],
  // batch 1 only: tfjs cpu's ResizeNearestNeighborGrad is wrong for batch > 1 (checked by hand below)
  ['nearest upsampling (batch 1)', (x) => tf.image.resizeNearestNeighbor(x as tf.Tensor4D, [8, 6]), [s([1, 4, 3, 5], 70)]],
  ['maxPool 2x2 on a non-square input', (x) => tf.maxPool(x as tf.Tensor4D, 2, 2, 'valid'), [s([1, 4, 6, 3], 73)]],
  ['log softmax', (x) => tf.logSoftmax(x, -1), [s([2, 3, 4, 5], 71)]],
  ['exp (odd length: vector body + scalar tail)', (x) => tf.exp(tf.mul(x, 8)), [s([3, 5, 7], 90)]],
  ['step with alpha (odd length), times x so the gradient path is exercised', (x) => tf.mul(tf.step(x, 0.25), x), [s([3, 5, 7], 91)]],
];

d('fedsfda-native kernels match the pure-JS cpu backend (tolerance 1e-4 * (1 + max|ref|))', () => {
  beforeAll(() => {
    registerNativeBackend();
  });

  it.each([...convCases, ...matmulCases, ...otherCases])('%s: output and gradients', async (_name, fn, specs, grads) => {
    const res = await compareWithCpu(NATIVE_BACKEND, fn, specs, { grads: grads ?? true });
    for (const r of res) expect(r, `${r.what}: max |diff| ${r.maxAbsDiff} at scale ${r.scale}`).toMatchObject({ ok: true });
  });

  it('the kernels really run natively (not the cpu fallback)', () => {
    const addon = registerNativeBackend();
    expect(addon.threads()).toBeGreaterThanOrEqual(1);
    expect(tf.getKernel(tf.Conv2DBackpropFilter, NATIVE_BACKEND)?.kernelFunc).not.toBe(tf.getKernel(tf.Conv2DBackpropFilter, 'cpu')?.kernelFunc);
    // Every cpu kernel is available on the native backend.
    const names = new Set(tf.getKernelsForBackend(NATIVE_BACKEND).map((k) => k.kernelName));
    for (const k of tf.getKernelsForBackend('cpu')) expect(names.has(k.kernelName)).toBe(true);
  });

  // 'transpose' at batch 2 (the product model's upsampling); 'nearest' at batch 1 because the cpu
  // reference's ResizeNearestNeighborGrad is wrong for batch > 1.
  it.each([
    ['transpose', 2],
    ['nearest', 1],
  ] as const)('a reference U-Net step (%s upsampling, batch %i): loss and every parameter gradient match cpu', async (upsample, batch) => {
    const c = { inChannels: 1, numClasses: 3, baseChannels: 4, depth: 2, upsample };
    const step = async (backend: string) => {
      await tf.setBackend(backend);
      const p = createReferenceParams(c, 5);
      const { x, y } = randomBatch(c, batch, 16, 16, 6);
      const { value, grads } = tf.variableGrads(() => softmaxCrossEntropy(referenceForward(p, c, x), y), [...p.values()]);
      const out = { loss: value.dataSync()[0], grads: [...p.values()].map((v) => grads[v.name].dataSync() as Float32Array) };
      tf.dispose([value, x, y, ...Object.values(grads), ...p.values()]);
      return out;
    };
    const ref = await step('cpu');
    const got = await step(NATIVE_BACKEND);
    expect(Math.abs(got.loss - ref.loss)).toBeLessThan(1e-5 * (1 + Math.abs(ref.loss)));
    expect(got.grads.length).toBe(ref.grads.length);
    ref.grads.forEach((g, i) => {
      const scale = Math.max(...g.map(Math.abs));
      const diff = Math.max(...g.map((v, k) => Math.abs(v - got.grads[i][k])));
      // 1e-3: BN over a 16x16x2 batch amplifies float32 summation-order differences through 14 layers.
      expect(diff, `param ${i}`).toBeLessThanOrEqual(1e-3 * (1 + scale));
    });
  });

  it.each([
    [false, false],
    [true, false],
    [false, true],
  ])('nearest-upsampling gradient is the adjoint of the forward (alignCorners %s, halfPixelCenters %s)', async (alignCorners, halfPixelCenters) => {
    await tf.setBackend(NATIVE_BACKEND);
    const x = tf.randomNormal([2, 3, 4, 2], 0, 1, 'float32', 1);
    const r = tf.randomNormal([2, 7, 6, 2], 0, 1, 'float32', 2);
    const f = (v: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(v as tf.Tensor4D, [7, 6], alignCorners, halfPixelCenters), r));
    const g = tf.grad(f)(x);
    // The op is linear: <resize(x), r> = <x, resize^T(r)>.
    const lhs = f(x).dataSync()[0];
    const rhs = tf.sum(tf.mul(x, g)).dataSync()[0];
    expect(Math.abs(lhs - rhs)).toBeLessThan(1e-4 * (1 + Math.abs(lhs)));
    // And every dy element lands somewhere: sum of the gradient = sum of r.
    expect(Math.abs(tf.sum(g).dataSync()[0] - tf.sum(r).dataSync()[0])).toBeLessThan(1e-3);
    tf.dispose([x, r, g]);
  });

  it('nearest-upsampling gradient is right for batch > 1 (where the tfjs cpu kernel is not)', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const x = tf.tensor4d([1, 2, 3, 4, 5, 6, 7, 8], [2, 2, 2, 1]);
    const r = tf.reshape(tf.range(1, 33), [2, 4, 4, 1]);
    const g = tf.grad((v: tf.Tensor) => tf.sum(tf.mul(tf.image.resizeNearestNeighbor(v as tf.Tensor4D, [4, 4]), r)))(x);
    // Each input pixel receives the sum of r over its 2x2 block: image 2 covers r = 17..32.
    expect(Array.from(g.dataSync())).toEqual([14, 22, 46, 54, 78, 86, 110, 118]);
    tf.dispose([x, r, g]);
  });

  it('zero-sized problems fall back instead of throwing', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    const y = tf.conv2d(tf.zeros([0, 4, 4, 2]) as tf.Tensor4D, tf.ones([3, 3, 2, 3]) as tf.Tensor4D, 1, 'same');
    expect(y.shape).toEqual([0, 4, 4, 3]);
    y.dispose();
  });

  it('concurrent calls from a worker thread and the main thread give correct results', async () => {
    const addon = registerNativeBackend();
    const N = 2, H = 16, W = 16, C = 8;
    const x = Float32Array.from({ length: N * H * W * C }, (_, i) => Math.sin(i));
    const w = Float32Array.from({ length: 9 * C * C }, (_, i) => Math.cos(i));
    const params = Int32Array.from([N, H, W, C, H, W, C, 3, 3, 1, 1, 1, 1, 1, 1]);
    const ref = new Float32Array(N * H * W * C);
    addon.conv2d(x, w, ref, params, null, false);
    // The worker hammers the same (process-wide) thread pool while the main thread does too.
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const a = require(workerData.path);
       const y = new Float32Array(workerData.ref.length);
       let ok = true;
       for (let i = 0; i < 200; i++) {
         a.conv2d(workerData.x, workerData.w, y, workerData.params, null, false);
         for (let k = 0; k < y.length; k++) if (y[k] !== workerData.ref[k]) ok = false;
       }
       parentPort.postMessage(ok);`,
      { eval: true, workerData: { path: NATIVE_ADDON_PATH, x, w, params, ref } },
    );
    const done = new Promise<boolean>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    let mainOk = true;
    const y = new Float32Array(ref.length);
    for (let i = 0; i < 200; i++) {
      addon.conv2d(x, w, y, params, null, false);
      if (!y.every((v, k) => v === ref[k])) mainOk = false;
    }
    expect(await done).toBe(true);
    expect(mainOk).toBe(true);
    await worker.terminate();
  });

  it('step and exp keep tfjs semantics for NaN, +-0 and infinities in both the vector body and the tail', () => {
    const addon = registerNativeBackend();
    const special = [NaN, -0, 0, 1e-30, -1e-30, Infinity, -Infinity, 2, -2];
    const x = Float32Array.from([...special, ...special]); // 18: two 8-wide vectors + a 2-element tail
    const st = new Float32Array(x.length), ex = new Float32Array(x.length);
    addon.step(x, st, 0.5);
    addon.exp(x, ex);
    x.forEach((v, i) => {
      expect(st[i]).toBe(Number.isNaN(v) ? NaN : v > 0 ? 1 : 0.5);
      expect(ex[i]).toBe(Math.fround(Math.exp(v)));
    });
  });

  it('softmax is the cpu kernel to the bit (random logits over several scales, NaN, infinities, ties)', async () => {
    const special = [NaN, -0, 0, 1e-30, Infinity, -Infinity, 88, -104, 3, 3];
    const run = async (backend: string, x: Float32Array, shape: number[]): Promise<Float32Array> => {
      await tf.setBackend(backend);
      const t = tf.tensor(x, shape);
      const y = tf.softmax(t);
      const out = y.dataSync() as Float32Array;
      tf.dispose([t, y]);
      return out;
    };
    const cases: [Float32Array, number[]][] = [
      [tf.tidy(() => tf.randomNormal([8, 48, 48, 4], 0, 6, 'float32', 93).dataSync() as Float32Array), [8, 48, 48, 4]],
      [tf.tidy(() => tf.randomUniform([7, 13], -200, 200, 'float32', 94).dataSync() as Float32Array), [7, 13]],
      [Float32Array.from(special.flatMap((a) => special.map((b) => [a, b, 1]).flat())), [special.length ** 2, 3]],
      [Float32Array.from([2.5]), [1]],
    ];
    for (const [x, shape] of cases) {
      const ref = await run('cpu', x, shape);
      const got = await run(NATIVE_BACKEND, x, shape);
      expect(Buffer.from(got.buffer).equals(Buffer.from(ref.buffer))).toBe(true);
    }
    expect(tf.getKernel(tf.Softmax, NATIVE_BACKEND)?.kernelFunc).not.toBe(tf.getKernel(tf.Softmax, 'cpu')?.kernelFunc);
  });

  it.each([
    ['floor', (t: tf.Tensor) => tf.floor(t)],
    ['sqrt', (t: tf.Tensor) => tf.sqrt(t)],
    ['log', (t: tf.Tensor) => tf.log(t)],
  ] as const)('%s is the cpu kernel to the bit (NaN, +-0, infinities, halves, negatives, random values)', async (_name, op) => {
    const special = [NaN, -0, 0, -0.5, 0.5, 1.5, -1.5, 1e30, 1e-30, -1e-30, Infinity, -Infinity];
    const x = Float32Array.from([...special, ...(tf.tidy(() => tf.randomUniform([1000], -3, 3, 'float32', 95).dataSync()) as Float32Array)]);
    const run = async (backend: string): Promise<Float32Array> => {
      await tf.setBackend(backend);
      const t = tf.tensor(x);
      const y = op(t);
      const out = y.dataSync() as Float32Array;
      tf.dispose([t, y]);
      return out;
    };
    const ref = await run('cpu');
    expect(Buffer.from((await run(NATIVE_BACKEND)).buffer).equals(Buffer.from(ref.buffer))).toBe(true);
  });

  it('bad arguments to the addon throw a RangeError instead of crashing', () => {
    const addon = registerNativeBackend();
    const params = Int32Array.from([1, 4, 4, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1, 1, 1]);
    expect(() => addon.conv2d(new Float32Array(3), new Float32Array(9), new Float32Array(16), params, null, false)).toThrow(/x has 3 elements, needs 16/);
    expect(() => addon.conv2d(new Float32Array(16), new Float32Array(9), new Float32Array(16), new Int32Array(3), null, false)).toThrow(/params must have 15/);
    expect(() => addon.threads(0)).toThrow(/threads must be in/);
  });
});

describe('collapseBroadcast', () => {
  it('merges contiguous dims of both operands', () => {
    expect(collapseBroadcast([8, 64, 64, 16], [65536, 1024, 16, 1], [0, 0, 0, 1])).toEqual({ shape: [32768, 16], as: [16, 1], bs: [0, 1] });
    expect(collapseBroadcast([2, 3], [3, 1], [3, 1])).toEqual({ shape: [6], as: [1], bs: [1] });
    expect(collapseBroadcast([1, 1], [0, 0], [0, 0])).toEqual({ shape: [1], as: [0], bs: [0] });
  });
});
