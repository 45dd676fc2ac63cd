/**
 * A toy LocalTrainer for protocol tests: linear least squares y = X w + b on site-local synthetic data, trained
 * by a few full-batch gradient steps. Real computation (the result depends on the global weights and the data),
 * deterministic, and cheap, so integration tests can recompute FedAvg by hand.
 */
import type { WeightSet } from '../../protocol/named-tensor.ts';
import type { EvalConfig, FitConfig, LocalTrainer } from '../../site-agent/client/local-trainer.ts';

export interface LinearData {
  x: Float64Array; // n x d, row-major
  y: Float64Array; // n
  n: number;
  d: number;
}

/** Deterministic data: y = X w_true + b_true + small noise, all from a 32-bit LCG seeded per site. */
export function makeLinearData(seed: number, n: number, d: number, wTrue: number[], bTrue: number): LinearData {
  let s = seed >>> 0;
  const rnd = (): number => {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    return s / 4294967296 - 0.5;
  };
  const x = new Float64Array(n * d);
  const y = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let t = bTrue;
    for (let j = 0; j < d; j++) {
      x[i * d + j] = 2 * rnd();
      t += wTrue[j] * x[i * d + j];
    }
    y[i] = t + 0.01 * rnd();
  }
  return { x, y, n, d };
}

export function mse(data: LinearData, w: ArrayLike<number>, b: number): number {
  let loss = 0;
  for (let i = 0; i < data.n; i++) {
    let p = b;
    for (let j = 0; j < data.d; j++) p += w[j] * data.x[i * data.d + j];
    loss += (p - data.y[i]) ** 2;
  }
  return loss / data.n;
}

/** `steps` gradient-descent steps on the mean squared error from (w, b); pure, returns float32 like the wire. */
export function leastSquaresSteps(data: LinearData, w0: Float32Array, b0: number, lr: number, steps: number): { w: Float32Array; b: number } {
  const w = Float64Array.from(w0);
  let b = b0;
  for (let s = 0; s < steps; s++) {
    const gw = new Float64Array(data.d);
    let gb = 0;
    for (let i = 0; i < data.n; i++) {
      let p = b;
      for (let j = 0; j < data.d; j++) p += w[j] * data.x[i * data.d + j];
      const r = (2 * (p - data.y[i])) / data.n;
      for (let j = 0; j < data.d; j++) gw[j] += r * data.x[i * data.d + j];
      gb += r;
    }
    for (let j = 0; j < data.d; j++) w[j] -= lr * gw[j];
    b -= lr * gb;
  }
  return { w: Float32Array.from(w), b: Math.fround(b) };
}

export function linearWeights(w: Float32Array, b: number): WeightSet {
  return [
    { name: 'linear.w', shape: [w.length], data: new Float32Array(w) },
    { name: 'linear.b', shape: [1], data: new Float32Array([b]) },
  ];
}

function unpack(ws: WeightSet): { w: Float32Array; b: number } {
  const w = ws.find((t) => t.name === 'linear.w');
  const b = ws.find((t) => t.name === 'linear.b');
  if (!w || !b) throw new Error('linear.w / linear.b missing');
  return { w: w.data, b: b.data[0] };
}

export class LeastSquaresTrainer implements LocalTrainer {
  fitCalls: FitConfig[] = [];
  constructor(
    readonly data: LinearData,
    readonly stepsPerEpoch = 5,
  ) {}

  async fit(global: WeightSet, config: FitConfig) {
    this.fitCalls.push(config);
    const { w, b } = unpack(global);
    const out = leastSquaresSteps(this.data, w, b, config.lr, config.localEpochs * this.stepsPerEpoch);
    return { weights: linearWeights(out.w, out.b), numExamples: this.data.n, metrics: { trainLoss: mse(this.data, out.w, out.b) } };
  }

  async evaluate(global: WeightSet, _config: EvalConfig) {
    const { w, b } = unpack(global);
    return { numExamples: this.data.n, metrics: { mse: mse(this.data, w, b), nanMetric: Number.NaN } };
  }
}
