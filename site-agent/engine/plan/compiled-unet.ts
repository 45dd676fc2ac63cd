/**
 * A tfjs U-Net bound to compiled plans. The tfjs variables stay the source of truth: `pull()` copies their
 * values into the plans' parameter buffer, `push()` writes them back by name. Programs are compiled once per
 * (shape, kind) and cached; they share the parameters, gradients and optimizer state.
 */
import * as tf from '@tensorflow/tfjs-core';
import { EngineError } from '../errors.ts';
import { loadNativeAddon, type NativePlanNet, type NativePlanProgram } from '../native-addon.ts';
import { HYPER_COUNT, OpCode, type PlanBuffer } from './plan-ops.ts';
import { planUNet, type PlanShape, type PlanSpec, type UNetPlan } from './unet-plan.ts';
import type { UNetFamily } from './unet-family.ts';

export interface CompiledProgram {
  readonly plan: UNetPlan;
  /** Runs once: x is NHWC images, labels class indices per pixel (train programs with a labelled loss). */
  run(x: Float32Array, labels: Int32Array | null, hyper: Float64Array): number;
  /** A copy of a buffer's interior (pad 0 buffers: logits, moments). */
  read(buf: PlanBuffer): Float32Array;
  /** Wall and process-CPU milliseconds per op kind in the last run, largest wall time first. */
  profile(): OpProfile[];
}

export interface OpProfile {
  readonly op: string;
  /** Wall time (load-dependent). */
  readonly ms: number;
  /** CPU time of all the process's threads (the work done). */
  readonly cpuMs: number;
  readonly calls: number;
}

const OP_NAMES = new Map<number, string>(Object.entries(OpCode).map(([k, v]) => [v, k]));

/** Per-run scalars, all defaults (no optimizer, no running-statistics update, BN eps 1e-5). */
export function emptyHyper(): Float64Array {
  const h = new Float64Array(HYPER_COUNT);
  h[9] = -1;
  h[10] = 1e-5;
  return h;
}

export class CompiledUNet {
  readonly family: UNetFamily;
  private readonly net: NativePlanNet;
  private readonly vars: ReadonlyMap<string, tf.Variable>;
  private readonly offsets = new Map<string, number>();
  private readonly programs = new Map<string, CompiledProgram>();
  /** Program runs so far (diagnostics: which path did the work). */
  runs = 0;

  /** `vars`: every parameter of the model by name (trainable and BN running statistics). */
  constructor(family: UNetFamily, vars: ReadonlyMap<string, tf.Variable>) {
    const load = loadNativeAddon();
    if (!load.ok) throw new EngineError('NATIVE_NOT_BUILT', `compiled plans need the native addon: ${load.reason}`);
    this.family = family;
    this.vars = vars;
    let off = 0;
    for (const [name, v] of vars) {
      this.offsets.set(name, off);
      off += Math.ceil(v.size / 16) * 16;
    }
    this.net = new load.addon.PlanNet(Math.max(off, 16));
    this.pull();
  }

  offset(name: string): number {
    const o = this.offsets.get(name);
    if (o === undefined) throw new EngineError('BAD_ARGUMENT', `compiled plan: the model has no parameter '${name}'`);
    return o;
  }

  private variable(name: string): tf.Variable {
    const v = this.vars.get(name);
    if (v === undefined) throw new EngineError('BAD_ARGUMENT', `compiled plan: the model has no parameter '${name}'`);
    return v;
  }

  /** tfjs -> plan: copies the named parameters (default: all). */
  pull(names: Iterable<string> = this.vars.keys()): void {
    for (const name of names) this.net.setParams(this.offset(name), this.variable(name).dataSync() as Float32Array);
  }

  /** plan -> tfjs: assigns the named parameters (default: all). */
  push(names: Iterable<string> = this.vars.keys()): void {
    for (const name of names) {
      const v = this.variable(name);
      const data = new Float32Array(v.size);
      this.net.getParams(this.offset(name), data);
      tf.tidy(() => v.assign(tf.tensor(data, v.shape, 'float32')));
    }
  }

  /** Current plan-side value of a parameter (without touching tfjs). */
  param(name: string): Float32Array {
    const out = new Float32Array(this.variable(name).size);
    this.net.getParams(this.offset(name), out);
    return out;
  }

  /** Gradient of a parameter from the last training run. */
  grad(name: string): Float32Array {
    const out = new Float32Array(this.variable(name).size);
    this.net.getGrads(this.offset(name), out);
    return out;
  }

  /** Zeroes optimizer state: 0 slots (sgd/none), 1 (momentum), 2 (adam); clears FedProx anchors. */
  resetOptimizer(slots: 0 | 1 | 2): void {
    this.net.resetOptimizer(slots);
  }

  /** FedProx anchor of a parameter (after resetOptimizer, which clears anchors). */
  setAnchor(name: string, data: Float32Array): void {
    if (data.length !== this.variable(name).size) throw new EngineError('BAD_ARGUMENT', `anchor for '${name}' has ${data.length} values, expected ${this.variable(name).size}`);
    this.net.setAnchor(this.offset(name), data);
  }

  /** The program for a shape and kind, compiled on first use. */
  program(shape: PlanShape, spec: PlanSpec): CompiledProgram {
    const key = JSON.stringify([shape.N, shape.H, shape.W, spec.kind, spec.kind === 'train' ? [spec.loss, spec.bn, [...spec.trainable].sort()] : null]);
    const hit = this.programs.get(key);
    if (hit) return hit;
    const plan = planUNet(this.family, shape, spec, (n) => this.offset(n));
    const load = loadNativeAddon();
    if (!load.ok) throw new EngineError('NATIVE_NOT_BUILT', load.reason);
    const prog: NativePlanProgram = new load.addon.PlanProgram(this.net, plan.encoded.words, plan.encoded.arenaFloats);
    const compiled: CompiledProgram = {
      plan,
      run: (x, labels, hyper) => {
        this.runs++;
        return prog.run(x, labels, hyper);
      },
      read: (buf) => {
        if (buf.pad !== 0) throw new EngineError('BAD_ARGUMENT', 'compiled plan: only unpadded buffers can be read');
        const out = new Float32Array(buf.floats);
        prog.read(plan.encoded.offsetOf(buf), out);
        return out;
      },
      profile: () => {
        const p = prog.profile();
        const agg = new Map<string, { op: string; ms: number; cpuMs: number; calls: number }>();
        for (let i = 0; i < p.length; i += 3) {
          const op = OP_NAMES.get(p[i]) ?? String(p[i]);
          const a = agg.get(op) ?? { op, ms: 0, cpuMs: 0, calls: 0 };
          a.ms += p[i + 1];
          a.cpuMs += p[i + 2];
          a.calls++;
          agg.set(op, a);
        }
        return [...agg.values()].sort((a, b) => b.ms - a.ms);
      },
    };
    this.programs.set(key, compiled);
    return compiled;
  }
}
