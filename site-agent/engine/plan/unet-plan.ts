/**
 * Plans one U-Net-family program at a fixed shape: the forward pass (every conv with its BN + ReLU), and for
 * training the loss, the backward pass in reverse order, and the optimizer fused into the op that writes each
 * parameter's last gradient. Kinds:
 *   train  forward (BN with batch or running statistics) + loss + backward for the `trainable` parameters
 *   infer  forward with running statistics, conv + BN + ReLU fused into one op, logits out
 *   stats  forward with batch statistics up to the last BN (AdaBN): batch moments out, running statistics
 *          updated with the run's bnMomentum
 */
import { EngineError } from '../errors.ts';
import { PlanBuilder, type EncodedPlan } from './plan-builder.ts';
import { ConvMode, Flag, LossKindCode, OpCode, type PlanBuffer, type PlanLoss, type PlanView } from './plan-ops.ts';
import { levelChannels, type ConvUnitNames, type UNetFamily } from './unet-family.ts';

export type PlanSpec =
  | { readonly kind: 'train'; readonly loss: PlanLoss; readonly bn: 'batch' | 'running'; readonly trainable: ReadonlySet<string> }
  | { readonly kind: 'infer' }
  | { readonly kind: 'stats' };

export interface PlanShape {
  readonly N: number;
  readonly H: number;
  readonly W: number;
}

export interface UNetPlan {
  readonly encoded: EncodedPlan;
  readonly input: PlanBuffer;
  /** infer: the logits [N, H, W, K]. */
  readonly logits: PlanBuffer | null;
  /** stats: batch moments [mean, var] per BN layer key, in forward order. */
  readonly moments: ReadonlyMap<string, PlanBuffer>;
  /** Parameters the program updates (train). */
  readonly updated: readonly string[];
}

interface UnitRec {
  readonly names: ConvUnitNames;
  readonly cin: number;
  readonly cout: number;
  readonly X: PlanView;
  readonly Y: PlanBuffer | null;
  readonly S: PlanBuffer | null;
  readonly O: PlanView;
}

class UNetPlanner {
  readonly b = new PlanBuilder();
  readonly units = new Map<string, UnitRec>();
  readonly moments = new Map<string, PlanBuffer>();
  readonly updated: string[] = [];

  constructor(
    readonly f: UNetFamily,
    readonly s: PlanShape,
    readonly spec: PlanSpec,
  ) {}

  size(l: number): [number, number] {
    return [this.s.H / 2 ** (l - 1), this.s.W / 2 ** (l - 1)];
  }

  /** Channels of decoder level l's concatenation and where the upsampled half sits. */
  cat(l: number): { C: number; upC: number; upAt: number; skipAt: number } {
    const c = levelChannels(this.f, l);
    const upC = this.f.upsample === 'transpose' ? c : levelChannels(this.f, l + 1);
    return this.f.concat === 'up-skip' ? { C: upC + c, upC, upAt: 0, skipAt: upC } : { C: upC + c, upC, upAt: c, skipAt: 0 };
  }

  trainable(name: string | undefined): boolean {
    return this.spec.kind === 'train' && name !== undefined && this.spec.trainable.has(name);
  }

  /** conv3x3 -> BN -> ReLU into O. */
  unit(key: string, names: ConvUnitNames, X: PlanView, cin: number, cout: number, O: PlanView): void {
    const { b, spec } = this;
    const [N, H, W] = [O.buf.N, O.buf.H, O.buf.W];
    if (spec.kind === 'infer') {
      this.requireRunning(names);
      b.op({ code: OpCode.Conv, k: 3, cin, cout, mode: ConvMode.bnReluRunning, w: names.w, gamma: names.gamma, beta: names.beta, rmean: names.mean, rvar: names.var, a: X, b: O });
      this.units.set(key, { names, cin, cout, X, Y: null, S: null, O });
      return;
    }
    const batch = spec.kind === 'stats' || spec.bn === 'batch';
    if (!batch) this.requireRunning(names);
    const Y = b.tensor(N, H, W, cout);
    const S = batch ? b.moments(cout, spec.kind === 'stats') : null;
    if (S) this.moments.set(names.layer, S);
    b.op({ code: OpCode.Conv, k: 3, cin, cout, mode: batch ? ConvMode.rawStats : ConvMode.raw, w: names.w, rmean: names.mean, rvar: names.var, ...(S ? { stats: S } : {}), a: X, b: b.whole(Y) });
    b.op({
      code: OpCode.BnRelu, cout, gamma: names.gamma, beta: names.beta, rmean: names.mean, rvar: names.var,
      flags: batch ? 0 : Flag.runningStats, ...(S ? { stats: S } : {}), a: b.whole(Y), b: O,
    });
    this.units.set(key, { names, cin, cout, X, Y, S, O });
  }

  requireRunning(names: ConvUnitNames): void {
    if (names.mean === undefined || names.var === undefined) {
      throw new EngineError('BAD_ARGUMENT', `compiled plan: BN layer ${names.layer} has no running statistics (needed for inference-mode BN)`);
    }
  }

  forward(): { input: PlanBuffer; logits: PlanBuffer | null; latent: PlanBuffer; dlogits: PlanBuffer | null; cats: PlanBuffer[]; prev: PlanBuffer[] } {
    const { b, f, s, spec } = this;
    const { N } = s;
    const input = b.tensor(N, s.H, s.W, f.inChannels, 1);
    b.op({ code: OpCode.Input, a: b.whole(input) });
    let X = b.whole(input);
    let cin = f.inChannels;
    const cats: PlanBuffer[] = [];
    for (let l = 1; l <= f.depth; l++) {
      const [h, w] = this.size(l);
      const c = levelChannels(f, l);
      const u1 = b.tensor(N, h, w, c, 1);
      this.unit(`enc${l}.1`, f.unit(`enc${l}`, 1), X, cin, c, b.whole(u1));
      const cat = b.tensor(N, h, w, this.cat(l).C, 1);
      cats[l] = cat;
      const skip = b.slice(cat, this.cat(l).skipAt, c);
      this.unit(`enc${l}.2`, f.unit(`enc${l}`, 2), b.whole(u1), c, c, skip);
      const pooled = b.tensor(N, h / 2, w / 2, c, 1);
      b.op({ code: OpCode.MaxPool, a: skip, b: b.whole(pooled) });
      X = b.whole(pooled);
      cin = c;
    }
    const [hb, wb] = this.size(f.depth + 1);
    const cb = levelChannels(f, f.depth + 1);
    const ub = b.tensor(N, hb, wb, cb, 1);
    this.unit('bottleneck.1', f.unit('bottleneck', 1), X, cin, cb, b.whole(ub));
    let out = b.tensor(N, hb, wb, cb);
    this.unit('bottleneck.2', f.unit('bottleneck', 2), b.whole(ub), cb, cb, b.whole(out));
    const prev: PlanBuffer[] = [];
    for (let l = f.depth; l >= 1; l--) {
      const [h, w] = this.size(l);
      const c = levelChannels(f, l);
      const cat = cats[l];
      const g = this.cat(l);
      prev[l] = out;
      const upView = b.slice(cat, g.upAt, g.upC);
      if (f.upsample === 'transpose') {
        const up = f.up(l);
        b.op({ code: OpCode.ConvT, cin: levelChannels(f, l + 1), cout: c, w: up.w, bias: up.b, a: b.whole(out), b: upView });
      } else {
        b.op({ code: OpCode.Upsample, a: b.whole(out), b: upView });
      }
      const u1 = b.tensor(N, h, w, c, 1);
      this.unit(`dec${l}.1`, f.unit(`dec${l}`, 1), b.whole(cat), g.C, c, b.whole(u1));
      out = b.tensor(N, h, w, c);
      this.unit(`dec${l}.2`, f.unit(`dec${l}`, 2), b.whole(u1), c, c, b.whole(out));
    }
    if (spec.kind === 'stats') return { input, logits: null, latent: out, dlogits: null, cats, prev };
    const K = f.numClasses;
    const logits = b.tensor(N, s.H, s.W, K, 0, spec.kind === 'infer');
    b.op({ code: OpCode.Conv, k: 1, cin: levelChannels(f, 1), cout: K, mode: ConvMode.raw, w: f.head.w, bias: f.head.b, a: b.whole(out), b: b.whole(logits) });
    if (spec.kind !== 'train') return { input, logits, latent: out, dlogits: null, cats, prev };
    const dlogits = b.tensor(N, s.H, s.W, K);
    b.op({ code: OpCode.Loss, k: K, mode: LossKindCode[spec.loss], extra: dlogits, a: b.whole(logits) });
    return { input, logits, latent: out, dlogits, cats, prev };
  }

  /** Both parameters of a pair are trained or neither (a plan cannot train half of a pair). */
  pair(a: string, c: string): boolean {
    const ta = this.trainable(a), tc = this.trainable(c);
    if (ta !== tc) throw new EngineError('BAD_ARGUMENT', `compiled plan: ${a} and ${c} must be trained together (trainable: ${a} ${ta}, ${c} ${tc})`);
    if (ta) this.updated.push(a, c);
    return ta;
  }

  /** Backward through one conv-BN-ReLU unit given d(output); writes d(input) into dX when asked. */
  unitBwd(key: string, dO: PlanView, dX: PlanView | null, accumulate = false): void {
    const { b } = this;
    const r = this.units.get(key)!;
    const [N, H, W] = [r.O.buf.N, r.O.buf.H, r.O.buf.W];
    const dY = b.tensor(N, H, W, r.cout, 1);
    const bnGrad = this.pair(r.names.gamma, r.names.beta);
    b.op({
      code: OpCode.BnReluBwd, cout: r.cout, gamma: r.names.gamma, beta: r.names.beta, rmean: r.names.mean, rvar: r.names.var,
      flags: (r.S ? 0 : Flag.runningStats) | (bnGrad ? Flag.gradParams | Flag.update : 0), ...(r.S ? { stats: r.S } : {}),
      a: dO, b: r.O, c: b.whole(r.Y!), d: b.whole(dY),
    });
    if (dX) b.op({ code: OpCode.ConvBwdInput, k: 3, cin: r.cin, cout: r.cout, w: r.names.w, flags: accumulate ? Flag.accumulate : 0, a: b.whole(dY), d: dX });
    if (this.trainable(r.names.w)) {
      this.updated.push(r.names.w);
      b.op({ code: OpCode.ConvBwdFilter, k: 3, cin: r.cin, cout: r.cout, w: r.names.w, flags: Flag.update, a: r.X, b: b.whole(dY) });
    }
  }

  backward(fw: ReturnType<UNetPlanner['forward']>): void {
    const { b, f, s } = this;
    const { N } = s;
    const c1 = levelChannels(f, 1);
    const dLatent = b.tensor(N, s.H, s.W, c1);
    b.op({ code: OpCode.ConvBwdInput, k: 1, cin: c1, cout: f.numClasses, w: f.head.w, a: b.whole(fw.dlogits!), d: b.whole(dLatent) });
    if (this.pair(f.head.w, f.head.b)) {
      b.op({ code: OpCode.ConvBwdFilter, k: 1, cin: c1, cout: f.numClasses, w: f.head.w, bias: f.head.b, flags: Flag.update, a: b.whole(fw.latent), b: b.whole(fw.dlogits!) });
    }
    const dCats: PlanBuffer[] = [];
    let dOut = dLatent;
    for (let l = 1; l <= f.depth; l++) {
      const [h, w] = this.size(l);
      const c = levelChannels(f, l);
      const g = this.cat(l);
      const dU1 = b.tensor(N, h, w, c);
      this.unitBwd(`dec${l}.2`, b.whole(dOut), b.whole(dU1));
      const dCat = b.tensor(N, h, w, g.C);
      dCats[l] = dCat;
      this.unitBwd(`dec${l}.1`, b.whole(dU1), b.whole(dCat));
      const prev = fw.prev[l];
      const dPrev = b.tensor(N, prev.H, prev.W, prev.C);
      const dUp = b.slice(dCat, g.upAt, g.upC);
      if (f.upsample === 'transpose') {
        const up = f.up(l);
        const grads = this.pair(up.w, up.b);
        b.op({ code: OpCode.ConvTBwd, cin: prev.C, cout: c, w: up.w, bias: up.b, flags: grads ? Flag.gradParams | Flag.update : 0, a: dUp, b: b.whole(prev), d: b.whole(dPrev) });
      } else {
        b.op({ code: OpCode.UpsampleBwd, a: dUp, d: b.whole(dPrev) });
      }
      dOut = dPrev;
    }
    const [hb, wb] = this.size(f.depth + 1);
    const dUb = b.tensor(N, hb, wb, levelChannels(f, f.depth + 1));
    this.unitBwd('bottleneck.2', b.whole(dOut), b.whole(dUb));
    let dPool = b.tensor(N, hb, wb, levelChannels(f, f.depth));
    this.unitBwd('bottleneck.1', b.whole(dUb), b.whole(dPool));
    for (let l = f.depth; l >= 1; l--) {
      const [h, w] = this.size(l);
      const c = levelChannels(f, l);
      const skip = this.units.get(`enc${l}.2`)!.O;
      const dSkip = b.slice(dCats[l], this.cat(l).skipAt, c);
      b.op({ code: OpCode.MaxPoolBwd, flags: Flag.accumulate, a: b.whole(dPool), b: skip, d: dSkip });
      const dU1 = b.tensor(N, h, w, c);
      this.unitBwd(`enc${l}.2`, dSkip, b.whole(dU1));
      if (l > 1) {
        dPool = b.tensor(N, h, w, levelChannels(f, l - 1));
        this.unitBwd(`enc${l}.1`, b.whole(dU1), b.whole(dPool));
      } else {
        this.unitBwd(`enc${l}.1`, b.whole(dU1), null);
      }
    }
  }
}

/** Plans a program; `paramOffset` maps a parameter name to its offset in the PlanNet. */
export function planUNet(f: UNetFamily, shape: PlanShape, spec: PlanSpec, paramOffset: (name: string) => number): UNetPlan {
  const div = 2 ** f.depth;
  for (const [k, v] of [['N', shape.N], ['H', shape.H], ['W', shape.W]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new EngineError('BAD_ARGUMENT', `compiled plan: ${k} must be a positive integer, got ${v}`);
  }
  if (shape.H % div !== 0 || shape.W % div !== 0) throw new EngineError('BAD_ARGUMENT', `compiled plan: ${shape.H}x${shape.W} is not divisible by 2^depth = ${div}`);
  const p = new UNetPlanner(f, shape, spec);
  const fw = p.forward();
  if (spec.kind === 'train') p.backward(fw);
  return { encoded: p.b.build(paramOffset), input: fw.input, logits: fw.logits, moments: p.moments, updated: p.updated };
}
