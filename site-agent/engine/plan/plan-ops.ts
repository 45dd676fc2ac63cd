/**
 * The op records of a compiled plan, as the native executor reads them (native/src/plan.h,
 * native/src/plan-binding.cc): OP_WORDS int32 per op, views of the activation arena as 8 ints.
 */

export const OP_WORDS = 46;

export const OpCode = {
  Input: 1,
  Conv: 2,
  BnRelu: 3,
  MaxPool: 4,
  Upsample: 5,
  ConvT: 6,
  Loss: 7,
  ConvBwdInput: 8,
  ConvBwdFilter: 9,
  BnReluBwd: 10,
  MaxPoolBwd: 11,
  UpsampleBwd: 12,
  ConvTBwd: 13,
} as const;
export type OpCodeValue = (typeof OpCode)[keyof typeof OpCode];

/** Op flags (bit set). */
export const Flag = { accumulate: 1, update: 2, gradParams: 4, runningStats: 8 } as const;

/** Conv epilogues: raw output; raw + batch moments (and running-statistics update); relu(BN running) fused. */
export const ConvMode = { raw: 0, rawStats: 1, bnReluRunning: 2 } as const;

export const LossKindCode = { ce: 1, dice: 2, 'ce+dice': 3, entropy: 4 } as const;
export type PlanLoss = keyof typeof LossKindCode;

/** Indices of the per-run scalars (native Hyper enum). */
export const Hyper = {
  optKind: 0,
  lr: 1,
  momentum: 2,
  beta1: 3,
  beta2: 4,
  adamEps: 5,
  weightDecay: 6,
  proxMu: 7,
  step: 8,
  bnMomentum: 9,
  bnEps: 10,
} as const;
export const HYPER_COUNT = 11;
export const OptKindCode = { none: 0, sgd: 1, momentum: 2, adam: 3 } as const;

/** A region of the arena: `N x (H + 2 pad) x (W + 2 pad) x C` floats with a zero border of width pad. */
export interface PlanBuffer {
  readonly id: number;
  readonly N: number;
  readonly H: number;
  readonly W: number;
  readonly C: number;
  readonly pad: number;
  readonly floats: number;
  /** Live to the end of the program (read by the caller after a run). */
  readonly keep: boolean;
}

/** Channels [c0, c0 + C) of a buffer. */
export interface PlanView {
  readonly buf: PlanBuffer;
  readonly c0: number;
  readonly C: number;
}

/** One op before arena offsets and parameter offsets are known. */
export interface OpSpec {
  readonly code: OpCodeValue;
  readonly k?: number;
  readonly cin?: number;
  readonly cout?: number;
  readonly mode?: number;
  readonly flags?: number;
  readonly w?: string;
  readonly bias?: string;
  readonly gamma?: string;
  readonly beta?: string;
  readonly rmean?: string;
  readonly rvar?: string;
  /** Batch moments [mean(C), var(C)]. */
  readonly stats?: PlanBuffer;
  /** Loss: d loss / d logits. */
  readonly extra?: PlanBuffer;
  readonly a?: PlanView;
  readonly b?: PlanView;
  readonly c?: PlanView;
  readonly d?: PlanView;
}

/** Writes one op record. */
export function encodeOp(op: OpSpec, out: Int32Array, at: number, bufOffset: (b: PlanBuffer) => number, paramOffset: (name: string) => number): void {
  const p = (name: string | undefined): number => (name === undefined ? -1 : paramOffset(name));
  const r = out.subarray(at, at + OP_WORDS);
  r.set([op.code, op.k ?? 0, op.cin ?? 0, op.cout ?? 0, op.mode ?? 0, op.flags ?? 0, p(op.w), p(op.bias), p(op.gamma), p(op.beta), p(op.rmean), p(op.rvar)]);
  r[12] = op.stats ? bufOffset(op.stats) : -1;
  r[13] = op.extra ? bufOffset(op.extra) : -1;
  [op.a, op.b, op.c, op.d].forEach((v, i) => {
    if (v === undefined) return;  // N = 0: unused operand
    r.set([bufOffset(v.buf), v.buf.N, v.buf.H, v.buf.W, v.C, v.buf.pad, v.buf.C, v.c0], 14 + 8 * i);
  });
}
