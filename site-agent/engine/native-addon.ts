/**
 * Loads the compiled kernel addon (`native/build/Release/fedsfda_native.node`, built by
 * `scripts/build-native.mjs`). Loading never throws: a missing or broken build yields a reason string,
 * so backend selection can report why `fedsfda-native` was skipped.
 */
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { EngineError } from './errors.ts';

/** The functions exported by native/src/addon.cc. All write into caller-allocated output arrays. */
export interface NativeAddon {
  /** params: [N,H,W,Cin, OH,OW,Cout, FH,FW, SH,SW, DH,DW, padTop,padLeft]. */
  conv2d(x: Float32Array, w: Float32Array, y: Float32Array, params: Int32Array, bias: Float32Array | null, relu: boolean): void;
  conv2dBackpropInput(dy: Float32Array, w: Float32Array, dx: Float32Array, params: Int32Array): void;
  conv2dBackpropFilter(x: Float32Array, dy: Float32Array, dw: Float32Array, params: Int32Array): void;
  /** params: [batch, M, K, N, transA, transB, aBatch, bBatch]. */
  matMul(a: Float32Array, b: Float32Array, c: Float32Array, params: Int32Array, bias: Float32Array | null, relu: boolean): void;
  /** params: [N,H,W,C, OH,OW, FH,FW, SH,SW, DH,DW, padTop,padLeft]. */
  maxPool(x: Float32Array, y: Float32Array, params: Int32Array): void;
  maxPoolGrad(dy: Float32Array, x: Float32Array, dx: Float32Array, params: Int32Array): void;
  relu(x: Float32Array, y: Float32Array): void;
  /** tfjs Step: 1 where x > 0, alpha elsewhere, NaN stays NaN. */
  step(x: Float32Array, y: Float32Array, alpha: number): void;
  /** op: 0 add, 1 sub, 2 mul, 3 div, 4 squared difference, 5 max, 6 min; strides are per output dim (0 = broadcast). */
  binary(op: number, a: Float32Array, b: Float32Array, out: Float32Array, shape: Int32Array, aStrides: Int32Array, bStrides: Int32Array): void;
  /** x viewed as [outer, red, inner]; out[o, i] = scale * sum_r x[o, r, i]. */
  reduceSum(x: Float32Array, out: Float32Array, outer: number, red: number, inner: number, scale: number): void;
  slice(x: Float32Array, out: Float32Array, inShape: Int32Array, begin: Int32Array, size: Int32Array): void;
  tile(x: Float32Array, out: Float32Array, inShape: Int32Array, outShape: Int32Array): void;
  square(x: Float32Array, y: Float32Array): void;
  /** y = e^x (tfjs Exp). */
  exp(x: Float32Array, y: Float32Array): void;
  /** tfjs FusedBatchNorm: y = (x - mean) * scale / sqrt(variance + eps) + offset, parameters indexed i % length. */
  batchNorm(x: Float32Array, y: Float32Array, mean: Float32Array, variance: Float32Array, offset: Float32Array | null, scale: Float32Array | null, eps: number): void;
  /** Copies src [outer, inner] into out [outer, outInner] at column offset (concat building block). */
  placeRows(src: Float32Array, out: Float32Array, outer: number, inner: number, outInner: number, offset: number): void;
  /** Per-channel mean and biased variance of x viewed as [rows, C]. */
  bnStats(x: Float32Array, C: number, mean: Float32Array, variance: Float32Array): void;
  /** Training-mode BN backward: dx, dgamma, dbeta from dy (see native/src/elementwise.h). */
  bnBackward(dy: Float32Array, x: Float32Array, mean: Float32Array, variance: Float32Array, gamma: Float32Array | null, eps: number, dx: Float32Array, dgamma: Float32Array, dbeta: Float32Array): void;
  /** Current thread count; with an argument, resizes the pool first. */
  threads(n?: number): number;
  /** The instruction set the addon was compiled for (e.g. "avx512f+fma", "avx2+fma"). */
  simd(): string;
  /** Compiled plans (native/src/plan.h): parameters, gradients and optimizer state of one model. */
  PlanNet: new (paramCount: number) => NativePlanNet;
  /** A validated op list (plan/plan-ops.ts records) over the calling thread's workspace. */
  PlanProgram: new (net: NativePlanNet, ops: Int32Array, arenaFloats: number) => NativePlanProgram;
}

export interface NativePlanNet {
  size(): number;
  setParams(offset: number, data: Float32Array): void;
  getParams(offset: number, out: Float32Array): void;
  getGrads(offset: number, out: Float32Array): void;
  /** FedProx anchors (allocated on first use, cleared by resetOptimizer). */
  setAnchor(offset: number, data: Float32Array): void;
  /** Zeroes optimizer state: 0 slots (sgd), 1 (momentum), 2 (adam). */
  resetOptimizer(slots: 0 | 1 | 2): void;
}

export interface NativePlanProgram {
  /** Runs the program; returns the loss (NaN without a loss op). */
  run(x: Float32Array | null, labels: Int32Array | null, hyper: Float64Array): number;
  /** Copies arena floats [offset, offset + out.length) of the last run on this thread. */
  read(offset: number, out: Float32Array): void;
  arenaSize(): number;
  /** [op code, wall ms, process CPU ms] per op of the last run, in op order. */
  profile(): Float64Array;
}

export const NATIVE_ADDON_PATH = fileURLToPath(new URL('./native/build/Release/fedsfda_native.node', import.meta.url));

export type NativeLoad = { ok: true; addon: NativeAddon } | { ok: false; reason: string };

let cached: NativeLoad | undefined;

export function loadNativeAddon(): NativeLoad {
  if (cached) return cached;
  if (!existsSync(NATIVE_ADDON_PATH)) {
    cached = { ok: false, reason: `addon not built (${NATIVE_ADDON_PATH} missing; run: node scripts/build-native.mjs)` };
    return cached;
  }
  try {
    const require = createRequire(import.meta.url);
    const addon = require(NATIVE_ADDON_PATH) as NativeAddon;
    cached = { ok: true, addon };
  } catch (e) {
    cached = { ok: false, reason: `addon failed to load: ${e instanceof Error ? e.message : String(e)}` };
  }
  return cached;
}

/**
 * `FEDSFDA_REQUIRE_NATIVE=1` (set by CI, `.ci/run`): the native addon must build and load. The build
 * script then exits non-zero on failure, and the native tests fail instead of skipping.
 */
export function nativeRequired(): boolean {
  return process.env.FEDSFDA_REQUIRE_NATIVE === '1';
}

/**
 * loadNativeAddon(), but a missing or broken addon is an EngineError `NATIVE_REQUIRED` when
 * FEDSFDA_REQUIRE_NATIVE=1 (so code and tests that would otherwise fall back or skip refuse to).
 */
export function loadNativeAddonChecked(): NativeLoad {
  const l = loadNativeAddon();
  if (!l.ok && nativeRequired()) throw new EngineError('NATIVE_REQUIRED', `FEDSFDA_REQUIRE_NATIVE=1 but the native addon is unusable: ${l.reason}`);
  return l;
}
