/**
 * Test support: runs a function of tensors on two backends and compares its output and its gradients
 * (w.r.t. every input, for the loss sum(f(x) * r) with a fixed random r) element by element.
 * Tolerance: |a - b| <= tol * (1 + max|b|) per tensor, i.e. relative to the tensor's scale.
 */
import * as tf from '@tensorflow/tfjs-core';
import { Rng } from '../../protocol/common/index.ts';

export interface InputSpec {
  shape: number[];
  /** Values are N(0,1) from this seed. */
  seed: number;
}

export interface Comparison {
  what: string;
  maxAbsDiff: number;
  scale: number;
  ok: boolean;
}

function values(spec: InputSpec): Float32Array {
  const rng = new Rng(spec.seed);
  const n = spec.shape.reduce((a, b) => a * b, 1);
  return Float32Array.from({ length: n }, () => rng.normal());
}

async function run(backend: string, fn: (...xs: tf.Tensor[]) => tf.Tensor, specs: InputSpec[], grads: boolean): Promise<Float32Array[]> {
  await tf.setBackend(backend);
  return tf.tidy(() => {
    const xs = specs.map((s) => tf.tensor(values(s), s.shape));
    const y = fn(...xs);
    const out = [y.dataSync() as Float32Array];
    if (grads) {
      const r = tf.tensor(values({ shape: y.shape, seed: 777 }), y.shape);
      const g = tf.grads((...a: tf.Tensor[]) => tf.sum(tf.mul(fn(...a), r)));
      for (const t of g(xs)) out.push(t.dataSync() as Float32Array);
    }
    return out;
  });
}

/** Compares fn on `backend` against the pure-JS cpu backend. */
export async function compareWithCpu(backend: string, fn: (...xs: tf.Tensor[]) => tf.Tensor, specs: InputSpec[], opts: { grads?: boolean; tol?: number } = {}): Promise<Comparison[]> {
  const grads = opts.grads ?? true;
  const tol = opts.tol ?? 1e-4;
  const ref = await run('cpu', fn, specs, grads);
  const got = await run(backend, fn, specs, grads);
  return ref.map((r, i) => {
    let maxAbsDiff = 0, scale = 0;
    for (let k = 0; k < r.length; k++) {
      const d = Math.abs(got[i][k] - r[k]);
      maxAbsDiff = Number.isNaN(d) ? Infinity : Math.max(maxAbsDiff, d);
      scale = Math.max(scale, Math.abs(r[k]));
    }
    const lengthOk = got[i].length === r.length;
    return { what: i === 0 ? 'output' : `grad[${i - 1}]`, maxAbsDiff, scale, ok: lengthOk && maxAbsDiff <= tol * (1 + scale) };
  });
}
