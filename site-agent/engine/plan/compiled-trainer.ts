/**
 * Training steps on a compiled plan: forward, loss, backward and the optimizer update in one native run,
 * with the semantics of site-agent/train (createOptimizer's SGD/momentum/Adam as tf.train implements them,
 * coupled weight decay, FedProx's proximal term, BN running statistics updated each step).
 */
import { EngineError } from '../errors.ts';
import type { CompiledProgram, CompiledUNet, OpProfile } from './compiled-unet.ts';
import { emptyHyper } from './compiled-unet.ts';
import { Hyper, OptKindCode, type PlanLoss } from './plan-ops.ts';
import type { PlanShape } from './unet-plan.ts';

export interface CompiledTrainConfig {
  readonly optimizer: 'sgd' | 'adam';
  readonly lr: number;
  /** SGD momentum (tf.train.momentum when > 0, plain SGD at 0). Default 0.9, as createOptimizer. */
  readonly momentum?: number;
  /** Coupled L2 weight decay: gradient += weightDecay * w. */
  readonly weightDecay?: number;
  readonly loss: PlanLoss;
  /** BN normalisation: each batch's moments ('batch') or the running statistics ('running'). */
  readonly bn: 'batch' | 'running';
  /** Running statistics <- (1 - m) running + m batch after each step; undefined: not updated. */
  readonly bnMomentum?: number;
  /** The parameters to train (names); the others stay fixed. */
  readonly trainable: ReadonlySet<string>;
  /** FedProx (Li et al., MLSys 2020, eq. 2): mu and the anchors w_global by name (trainable names). */
  readonly proximalMu?: number;
  readonly anchors?: ReadonlyMap<string, Float32Array>;
  /** Adam beta1, beta2, eps. Default 0.9, 0.999, 1e-8 (createOptimizer and tf.train.adam defaults). */
  readonly adam?: { readonly beta1: number; readonly beta2: number; readonly eps: number };
}

export class CompiledTrainer {
  private steps = 0;
  private last: CompiledProgram | null = null;
  private readonly hyper = emptyHyper();
  private readonly mu: number;

  constructor(
    readonly model: CompiledUNet,
    readonly cfg: CompiledTrainConfig,
  ) {
    if (!(cfg.lr > 0 && Number.isFinite(cfg.lr))) throw new EngineError('BAD_ARGUMENT', `compiled trainer: lr must be > 0, got ${cfg.lr}`);
    const momentum = cfg.momentum ?? 0.9;
    const kind = cfg.optimizer === 'adam' ? OptKindCode.adam : momentum > 0 ? OptKindCode.momentum : OptKindCode.sgd;
    model.resetOptimizer(kind === OptKindCode.adam ? 2 : kind === OptKindCode.momentum ? 1 : 0);
    const h = this.hyper;
    h[Hyper.optKind] = kind;
    h[Hyper.lr] = cfg.lr;
    h[Hyper.momentum] = momentum;
    h[Hyper.beta1] = cfg.adam?.beta1 ?? 0.9;
    h[Hyper.beta2] = cfg.adam?.beta2 ?? 0.999;
    h[Hyper.adamEps] = cfg.adam?.eps ?? 1e-8;
    h[Hyper.weightDecay] = cfg.weightDecay ?? 0;
    h[Hyper.bnMomentum] = cfg.bnMomentum ?? -1;
    this.mu = cfg.proximalMu ?? 0;
    h[Hyper.proxMu] = this.mu;
    if (this.mu > 0) {
      if (!cfg.anchors) throw new EngineError('BAD_ARGUMENT', 'compiled trainer: proximalMu > 0 needs anchors');
      for (const name of cfg.trainable) {
        const a = cfg.anchors.get(name);
        if (!a) throw new EngineError('BAD_ARGUMENT', `compiled trainer: no FedProx anchor for '${name}'`);
        model.setAnchor(name, a);
      }
    }
  }

  /** One optimizer step on a batch; returns the loss at the weights before the update. */
  step(x: Float32Array, shape: PlanShape, labels: Int32Array | null): number {
    const prog = this.model.program(shape, { kind: 'train', loss: this.cfg.loss, bn: this.cfg.bn, trainable: this.cfg.trainable });
    const prox = this.mu > 0 ? this.proximalTerm() : 0;
    this.hyper[Hyper.step] = ++this.steps;
    this.last = prog;
    return prog.run(x, labels, this.hyper) + prox;
  }

  /** Milliseconds per op kind of the last step. */
  profile(): OpProfile[] {
    return this.last?.profile() ?? [];
  }

  /** mu/2 * ||w - w_global||^2 over the trained parameters, at the current weights. */
  private proximalTerm(): number {
    let s = 0;
    for (const name of this.cfg.trainable) {
      const w = this.model.param(name);
      const a = this.cfg.anchors!.get(name)!;
      for (let i = 0; i < w.length; i++) s += (w[i] - a[i]) ** 2;
    }
    return (this.mu / 2) * s;
  }
}
