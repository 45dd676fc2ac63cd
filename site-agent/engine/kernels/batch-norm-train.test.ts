import { describe, expect, it, beforeAll } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-backend-cpu';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { batchNormTrain } from './batch-norm-train.ts';
import { initEngine, resetEngine } from '../select-backend.ts';
import { loadNativeAddonChecked } from '../native-addon.ts';
import { NATIVE_BACKEND, registerNativeBackend } from '../native-backend.ts';
import { EngineError } from '../errors.ts';
import { Rng } from '../../../protocol/common/index.ts';

const nativeOk = loadNativeAddonChecked().ok;  // throws under FEDSFDA_REQUIRE_NATIVE=1 when the addon is unusable

const EPS = 1e-5;

function data(shape: number[], seed: number, shift = 0): Float32Array {
  const rng = new Rng(seed);
  return Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 2 + shift);
}

/** y, mean, variance and the gradients of sum(y * r) w.r.t. x, gamma, beta. */
async function run(backend: string, fused: boolean, shape: number[]): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  const C = shape[shape.length - 1];
  return tf.tidy(() => {
    const x = tf.tensor(data(shape, 1, 3), shape), g = tf.tensor1d(data([C], 2)), b = tf.tensor1d(data([C], 3));
    const r = tf.tensor(data(shape, 4), shape);
    const axes = Array.from({ length: shape.length - 1 }, (_, i) => i);
    const f = (xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => {
      if (fused) return batchNormTrain(xi, gi as tf.Tensor1D, bi as tf.Tensor1D, EPS);
      const { mean, variance } = tf.moments(xi, axes);
      return { y: tf.batchNorm(xi, mean, variance, bi as tf.Tensor1D, gi as tf.Tensor1D, EPS), mean, variance };
    };
    const out = f(x, g, b);
    const grads = tf.grads((xi: tf.Tensor, gi: tf.Tensor, bi: tf.Tensor) => tf.sum(tf.mul(f(xi, gi, bi).y, r)))([x, g, b]);
    return [out.y, out.mean, out.variance, ...grads].map((t) => t.dataSync() as Float32Array);
  });
}

const cases: [string, number[]][] = [
  ['NHWC batch 3, 6 channels', [3, 4, 5, 6]],
  ['rank 2, 17 channels', [9, 17]],
];
// 2^20 elements: the native multi-threaded path (only worth the slow cpu reference once).
const largeCase: [string, number[]] = ['large (parallel path)', [4, 32, 32, 256]];

describe('batchNormTrain (fused training-mode BN) matches tf.moments + tf.batchNorm on cpu', () => {
  beforeAll(async () => {
    resetEngine();
    await initEngine({ backend: 'wasm' });  // registers wasm; the tests switch backends explicitly
    if (nativeOk) registerNativeBackend();
  });

  const backends = ['cpu', 'wasm', ...(nativeOk ? [NATIVE_BACKEND] : [])];
  for (const backend of backends) {
    it.each(backend === NATIVE_BACKEND ? [...cases, largeCase] : cases)(`on ${backend}: %s (tolerance 1e-4 * (1 + max|ref|))`, async (_n, shape) => {
      const ref = await run('cpu', false, shape);
      const got = await run(backend, true, shape);
      const names = ['y', 'mean', 'variance', 'dx', 'dgamma', 'dbeta'];
      ref.forEach((r, i) => {
        const scale = r.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
        let diff = 0;
        for (let k = 0; k < r.length; k++) diff = Math.max(diff, Math.abs(r[k] - got[i][k]));
        expect(diff, `${names[i]}: max |diff| ${diff} at scale ${scale}`).toBeLessThanOrEqual(1e-4 * (1 + scale));
      });
    });
  }

  it('rejects mismatched parameters with a typed error', () => {
    expect(() => batchNormTrain(tf.zeros([2, 3]), tf.zeros([4]) as tf.Tensor1D, tf.zeros([3]) as tf.Tensor1D)).toThrow(EngineError);
    expect(() => batchNormTrain(tf.zeros([2, 3]), tf.zeros([3]) as tf.Tensor1D, tf.zeros([3]) as tf.Tensor1D, 0)).toThrow(/eps must be > 0/);
  });

  it('does not leak tensors in a training step', async () => {
    await tf.setBackend(nativeOk ? NATIVE_BACKEND : 'cpu');
    const x = tf.randomNormal([2, 4, 4, 3]);
    const g = tf.variable(tf.ones([3])), b = tf.variable(tf.zeros([3]));
    const step = () => tf.tidy(() => {
      const { grads } = tf.variableGrads(() => tf.sum(tf.square(batchNormTrain(x, g as tf.Tensor1D, b as tf.Tensor1D).y)) as tf.Scalar, [g, b]);
      g.assign(tf.sub(g, tf.mul(grads[g.name], 0.1)));
    });
    step();
    const before = tf.memory().numTensors;
    step();
    expect(tf.memory().numTensors).toBe(before);
    tf.dispose([x, g, b]);
  });
});
