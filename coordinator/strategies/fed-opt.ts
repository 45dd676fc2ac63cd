/**
 * Adaptive server optimizers, Reddi et al., "Adaptive Federated Optimization", ICLR 2021, Algorithm 2:
 *   Delta_t = avg_i(x_i) - x_t                      (pseudo-gradient; here the example-weighted FedAvg mean, as Flower does)
 *   m_t = beta1 m_{t-1} + (1 - beta1) Delta_t
 *   FedAdagrad: v_t = v_{t-1} + Delta_t^2
 *   FedAdam:    v_t = beta2 v_{t-1} + (1 - beta2) Delta_t^2
 *   FedYogi:    v_t = v_{t-1} - (1 - beta2) Delta_t^2 sign(v_{t-1} - Delta_t^2)
 *   x_{t+1} = x_t + eta m_t / (sqrt(v_t) + tau)
 * with v_{-1} = tau^2 as in the paper. Pure functions over typed arrays plus a Strategy that keeps m, v.
 */
import type { WeightSet } from '../../protocol/index.ts';
import { AggregationError, weightedMetricMeans } from './aggregate.ts';
import { FedAvg, type FedAvgOptions } from './fedavg.ts';
import type { AggregatedFit, FitResult, RoundFailure } from './strategy.ts';

export type ServerOptimizer = 'adagrad' | 'adam' | 'yogi';

export interface FedOptHyper {
  eta: number;
  beta1: number;
  beta2: number;
  tau: number;
}

/** One server step on flat arrays; updates m and v in place and returns x_{t+1}. */
export function fedOptStep(kind: ServerOptimizer, x: Float32Array, avg: Float32Array, m: Float32Array, v: Float32Array, h: FedOptHyper): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) {
    const d = avg[i] - x[i];
    const d2 = d * d;
    m[i] = h.beta1 * m[i] + (1 - h.beta1) * d;
    switch (kind) {
      case 'adagrad':
        v[i] = v[i] + d2;
        break;
      case 'adam':
        v[i] = h.beta2 * v[i] + (1 - h.beta2) * d2;
        break;
      case 'yogi':
        v[i] = v[i] - (1 - h.beta2) * d2 * Math.sign(v[i] - d2);
        break;
      default: {
        const never: never = kind;
        throw new Error(`unknown optimizer ${String(never)}`);
      }
    }
    out[i] = x[i] + (h.eta * m[i]) / (Math.sqrt(v[i]) + h.tau);
  }
  return out;
}

export interface FedOptOptions extends FedAvgOptions, Partial<FedOptHyper> {
  optimizer: ServerOptimizer;
}

export class FedOpt extends FedAvg {
  override readonly name: string;
  private readonly kind: ServerOptimizer;
  private readonly h: FedOptHyper;
  private m = new Map<string, Float32Array>();
  private v = new Map<string, Float32Array>();

  constructor(opts: FedOptOptions) {
    super(opts);
    this.kind = opts.optimizer;
    this.name = `fed${opts.optimizer}`;
    // Defaults follow Flower's FedAdam/FedYogi (eta 0.1, beta1 0.9, beta2 0.99) with the paper's tau = 1e-3.
    this.h = { eta: opts.eta ?? 0.1, beta1: opts.beta1 ?? 0.9, beta2: opts.beta2 ?? 0.99, tau: opts.tau ?? 1e-3 };
  }

  override aggregateFit(_round: number, results: readonly FitResult[], _failures: readonly RoundFailure[], global: WeightSet): AggregatedFit | null {
    const avg = this.average(results, global);
    if (avg === null) return null;
    const weights = global.map((g, i) => {
      const a = avg[i];
      if (a.name !== g.name) throw new AggregationError('shape_mismatch', `order mismatch at ${g.name}`);
      if (this.opts.aggregates && !this.opts.aggregates(g.name)) return { name: g.name, shape: [...g.shape], data: new Float32Array(g.data) };
      let m = this.m.get(g.name);
      let v = this.v.get(g.name);
      if (!m || m.length !== g.data.length) this.m.set(g.name, (m = new Float32Array(g.data.length)));
      if (!v || v.length !== g.data.length) this.v.set(g.name, (v = new Float32Array(g.data.length).fill(this.h.tau * this.h.tau)));
      return { name: g.name, shape: [...g.shape], data: fedOptStep(this.kind, g.data, a.data, m, v, this.h) };
    });
    return { weights, metrics: weightedMetricMeans(results) };
  }

  exportState(): WeightSet {
    const out: WeightSet = [];
    for (const [name, d] of this.m) out.push({ name: `m/${name}`, shape: [d.length], data: new Float32Array(d) });
    for (const [name, d] of this.v) out.push({ name: `v/${name}`, shape: [d.length], data: new Float32Array(d) });
    return out;
  }

  importState(state: WeightSet): void {
    this.m = new Map();
    this.v = new Map();
    for (const t of state) {
      if (t.name.startsWith('m/')) this.m.set(t.name.slice(2), new Float32Array(t.data));
      else if (t.name.startsWith('v/')) this.v.set(t.name.slice(2), new Float32Array(t.data));
    }
  }
}

export class FedAdam extends FedOpt {
  constructor(opts: Omit<FedOptOptions, 'optimizer'> = {}) {
    super({ ...opts, optimizer: 'adam' });
  }
}

export class FedYogi extends FedOpt {
  constructor(opts: Omit<FedOptOptions, 'optimizer'> = {}) {
    super({ ...opts, optimizer: 'yogi' });
  }
}

export class FedAdagrad extends FedOpt {
  constructor(opts: Omit<FedOptOptions, 'optimizer'> = {}) {
    super({ ...opts, optimizer: 'adagrad' });
  }
}
