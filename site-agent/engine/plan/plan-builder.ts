/**
 * Builds a compiled plan: buffers and ops are declared in execution order, then every buffer gets an arena
 * offset once (greedy by size over live ranges: two buffers share memory only when no op between their first
 * and last use touches both), and the ops are encoded for the native executor.
 */
import { EngineError } from '../errors.ts';
import { encodeOp, OP_WORDS, type OpSpec, type PlanBuffer, type PlanView } from './plan-ops.ts';

/** Offsets are multiples of 16 floats (64 bytes: one cache line, one AVX-512 vector). */
const ALIGN = 16;

export interface EncodedPlan {
  readonly words: Int32Array;
  readonly arenaFloats: number;
  /** Arena offset of a buffer (for reading outputs after a run). */
  offsetOf(buf: PlanBuffer): number;
}

export class PlanBuilder {
  private readonly buffers: PlanBuffer[] = [];
  private readonly ops: OpSpec[] = [];

  /** An NHWC buffer with a zero border of width pad (0 or 1). */
  tensor(N: number, H: number, W: number, C: number, pad = 0, keep = false): PlanBuffer {
    for (const [k, v] of [['N', N], ['H', H], ['W', W], ['C', C]] as const) {
      if (!Number.isInteger(v) || v < 1) throw new EngineError('BAD_ARGUMENT', `plan buffer ${k} must be a positive integer, got ${v}`);
    }
    const b: PlanBuffer = { id: this.buffers.length, N, H, W, C, pad, floats: N * (H + 2 * pad) * (W + 2 * pad) * C, keep };
    this.buffers.push(b);
    return b;
  }

  /** Batch moments of a BN layer: [mean(C), var(C)]. */
  moments(C: number, keep = false): PlanBuffer {
    return this.tensor(1, 1, 1, 2 * C, 0, keep);
  }

  whole(buf: PlanBuffer): PlanView {
    return { buf, c0: 0, C: buf.C };
  }

  slice(buf: PlanBuffer, c0: number, C: number): PlanView {
    if (c0 < 0 || c0 + C > buf.C) throw new EngineError('BAD_ARGUMENT', `plan view channels [${c0}, ${c0 + C}) outside a ${buf.C}-channel buffer`);
    return { buf, c0, C };
  }

  op(spec: OpSpec): void {
    this.ops.push(spec);
  }

  get opCount(): number {
    return this.ops.length;
  }

  /** Assigns arena offsets and encodes the ops. */
  build(paramOffset: (name: string) => number): EncodedPlan {
    const first = new Map<number, number>();
    const last = new Map<number, number>();
    this.ops.forEach((op, i) => {
      const used = [op.a?.buf, op.b?.buf, op.c?.buf, op.d?.buf, op.stats, op.extra].filter((b): b is PlanBuffer => b !== undefined);
      for (const b of used) {
        if (!first.has(b.id)) first.set(b.id, i);
        last.set(b.id, i);
      }
    });
    const end = this.ops.length;
    const live = this.buffers
      .filter((b) => first.has(b.id))
      .map((b) => ({ b, from: first.get(b.id)!, to: b.keep ? end : last.get(b.id)!, size: Math.ceil(b.floats / ALIGN) * ALIGN }));
    live.sort((x, y) => y.size - x.size || x.from - y.from);
    const placed: { from: number; to: number; off: number; size: number }[] = [];
    const offsets = new Map<number, number>();
    let arena = 0;
    for (const x of live) {
      const clashes = placed.filter((p) => p.from <= x.to && x.from <= p.to).sort((p, q) => p.off - q.off);
      let off = 0;
      for (const p of clashes) {
        if (off + x.size <= p.off) break;
        off = Math.max(off, p.off + p.size);
      }
      placed.push({ from: x.from, to: x.to, off, size: x.size });
      offsets.set(x.b.id, off);
      arena = Math.max(arena, off + x.size);
    }
    if (arena >= 2 ** 31) throw new EngineError('BAD_ARGUMENT', `plan arena of ${arena} floats exceeds 2^31 (batch or image too large for one plan)`);
    const offsetOf = (b: PlanBuffer): number => {
      const o = offsets.get(b.id);
      if (o === undefined) throw new EngineError('BAD_ARGUMENT', `plan buffer ${b.id} is not used by any op`);
      return o;
    };
    const words = new Int32Array(this.ops.length * OP_WORDS);
    this.ops.forEach((op, i) => encodeOp(op, words, i * OP_WORDS, offsetOf, paramOffset));
    return { words, arenaFloats: Math.max(arena, ALIGN), offsetOf };
  }
}
