import * as tf from '@tensorflow/tfjs-core';
import { TrainError } from './train-error.ts';

export interface OptimizerConfig {
  readonly kind: 'sgd' | 'adam';
  readonly lr: number;
  /** SGD only; default 0.9. 0 gives plain SGD. */
  readonly momentum?: number;
  /** L2 penalty added to the gradient (PyTorch's coupled `weight_decay`), on every variable passed; default 0. */
  readonly weightDecay?: number;
}

/** A tfjs optimizer plus weight decay, stepping an explicit variable list (TENT passes only BN gamma/beta). */
export interface TrainOptimizer {
  readonly config: OptimizerConfig;
  /** Computes d f / d vars, applies one update, disposes everything but the variables; returns f's value. */
  step(f: () => tf.Scalar, vars: readonly tf.Variable[]): number;
  /** Applies gradients computed elsewhere (keyed by variable name; DP-SGD's noised mean), plus weight decay; disposes them. */
  apply(grads: Record<string, tf.Tensor>, vars: readonly tf.Variable[]): void;
  dispose(): void;
}

/**
 * SGD with (heavy-ball) momentum = tf.train.momentum (PyTorch's formulation: v = m v + g, w -= lr v);
 * Adam (Kingma & Ba, ICLR 2015, Alg. 1) with beta1 0.9, beta2 0.999, eps 1e-8 (PyTorch's defaults).
 */
export function createOptimizer(config: OptimizerConfig): TrainOptimizer {
  const { kind, lr } = config;
  const momentum = config.momentum ?? 0.9;
  const wd = config.weightDecay ?? 0;
  if (!(Number.isFinite(lr) && lr > 0)) throw new TrainError('INVALID_CONFIG', `optimizer lr must be > 0, got ${lr}`);
  if (!(momentum >= 0 && momentum < 1)) throw new TrainError('INVALID_CONFIG', `optimizer momentum must be in [0, 1), got ${momentum}`);
  if (!(wd >= 0 && Number.isFinite(wd))) throw new TrainError('INVALID_CONFIG', `optimizer weightDecay must be >= 0, got ${wd}`);
  let inner: tf.Optimizer;
  switch (kind) {
    case 'sgd':
      inner = momentum > 0 ? tf.train.momentum(lr, momentum) : tf.train.sgd(lr);
      break;
    case 'adam':
      inner = tf.train.adam(lr, 0.9, 0.999, 1e-8);
      break;
    default: {
      const never: never = kind;
      throw new TrainError('INVALID_CONFIG', `unknown optimizer '${String(never)}' (expected sgd or adam)`);
    }
  }
  const apply = (grads: Record<string, tf.Tensor>, vars: readonly tf.Variable[]): void => {
    try {
      if (wd > 0) {
        for (const v of vars) {
          const g = grads[v.name];
          if (g === undefined) continue;
          grads[v.name] = tf.tidy(() => tf.add(g, tf.mul(v, wd)));
          g.dispose();
        }
      }
      inner.applyGradients(grads);
    } finally {
      for (const g of Object.values(grads)) g.dispose();
    }
  };
  return {
    config: { kind, lr, momentum, weightDecay: wd },
    step(f, vars) {
      const { value, grads } = tf.variableGrads(f, [...vars]);
      try {
        apply(grads, vars);
        return value.dataSync()[0];
      } finally {
        value.dispose();
      }
    },
    apply,
    dispose() {
      inner.dispose();
      // tfjs-core 4.22's MomentumOptimizer.dispose() forgets the -lr scalar `c` that its SGD base class keeps.
      const c = (inner as unknown as { c?: tf.Tensor }).c;
      if (kind === 'sgd' && momentum > 0 && c !== undefined && !c.isDisposed) c.dispose();
    },
  };
}
