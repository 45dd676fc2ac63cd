/**
 * Reproducibility of the fedsfda-native backend (issue 3: "seeded, reproducible runs"). Every native
 * kernel must give bit-identical output for the same input, on repeated calls, for any pool size, and
 * wherever the arrays sit in memory; a seeded trainLocal run must give bit-identical weights.
 * Inputs are big enough for the multi-threaded paths (>= 2^20 elements for the memory-bound kernels;
 * the GEMM/conv kernels go parallel from 2 row blocks on).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import * as tf from '@tensorflow/tfjs-core';
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { loadNativeAddonChecked, type NativeAddon } from './native-addon.ts';
import { NATIVE_BACKEND, registerNativeBackend } from './native-backend.ts';
import { initEngine, resetEngine } from './select-backend.ts';
import { createUNet } from '../model/unet.ts';
import { makeSquaresDataset, trainLocal } from '../training/index.ts';

const load = loadNativeAddonChecked();  // throws under FEDSFDA_REQUIRE_NATIVE=1 when the addon is unusable
if (!load.ok) console.warn(`SKIPPING native determinism tests: ${load.reason}`);
const d = load.ok ? describe : describe.skip;

/** Deterministic pseudo-random values in [-0.5, 0.5) (an LCG: no dependence on the tfjs RNG). */
function rnd(n: number, seed: number): Float32Array {
  const o = new Float32Array(n);
  let s = seed >>> 0;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    o[i] = s / 2 ** 32 - 0.5;
  }
  return o;
}

/** Index of the first element whose bits differ, or -1 (NaN-safe, -0 vs 0 counts as different). */
function firstBitDiff(a: Float32Array, b: Float32Array): number {
  if (a.length !== b.length) return 0;
  const ua = new Uint32Array(a.buffer, a.byteOffset, a.length), ub = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < ua.length; i++) if (ua[i] !== ub[i]) return i;
  return -1;
}

/** A copy of `src` placed `shift` floats into a fresh buffer (different alignment than a fresh array). */
function shifted(src: Float32Array, shift: number): Float32Array {
  const buf = new Float32Array(src.length + shift);
  buf.set(src, shift);
  return buf.subarray(shift);
}

const M20 = 1 << 20;
const N = 4, H = 64, W = 64, C = 64; // 2^20 elements
const conv = (cin: number, cout: number) => Int32Array.from([N, H, W, cin, H, W, cout, 3, 3, 1, 1, 1, 1, 1, 1]);
const pool = Int32Array.from([N, H, W, C, H / 2, W / 2, 2, 2, 2, 2, 1, 1, 0, 0]);

/** Each case: inputs, output sizes, and the call writing into the outputs. */
interface KernelCase {
  name: string;
  inputs: Float32Array[];
  outputs: number[];
  run(a: NativeAddon, ins: Float32Array[], outs: Float32Array[]): void;
}

const big = (seed: number) => rnd(M20, seed);
const cases: KernelCase[] = [
  { name: 'conv2d (+bias, relu)', inputs: [rnd(N * H * W * 16, 1), rnd(9 * 16 * 24, 2), rnd(24, 3)], outputs: [N * H * W * 24],
    run: (a, [x, w, b], [y]) => a.conv2d(x, w, y, conv(16, 24), b, true) },
  { name: 'conv2dBackpropInput', inputs: [rnd(N * H * W * 24, 4), rnd(9 * 16 * 24, 5)], outputs: [N * H * W * 16],
    run: (a, [dy, w], [dx]) => a.conv2dBackpropInput(dy, w, dx, conv(16, 24)) },
  { name: 'conv2dBackpropInput, 2x2 stride 2 (tiled path: transposed-conv upsampling)', inputs: [rnd(N * 32 * 32 * 24, 27), rnd(4 * 16 * 24, 28)], outputs: [N * H * W * 16],
    run: (a, [dy, w], [dx]) => a.conv2dBackpropInput(dy, w, dx, Int32Array.from([N, H, W, 16, 32, 32, 24, 2, 2, 2, 2, 1, 1, 0, 0])) },
  { name: 'conv2dBackpropFilter (reduction over 16384 rows)', inputs: [rnd(N * H * W * 16, 6), rnd(N * H * W * 24, 7)], outputs: [9 * 16 * 24],
    run: (a, [x, dy], [dw]) => a.conv2dBackpropFilter(x, dy, dw, conv(16, 24)) },
  { name: 'matMul (batch 2, transposed B)', inputs: [rnd(2 * 700 * 96, 8), rnd(2 * 80 * 96, 9), rnd(80, 10)], outputs: [2 * 700 * 80],
    run: (a, [x, y, b], [o]) => a.matMul(x, y, o, Int32Array.from([2, 700, 96, 80, 0, 1, 2, 2]), b, false) },
  { name: 'maxPool', inputs: [big(11)], outputs: [M20 / 4], run: (a, [x], [y]) => a.maxPool(x, y, pool) },
  { name: 'maxPoolGrad', inputs: [rnd(M20 / 4, 12), big(13)], outputs: [M20], run: (a, [dy, x], [dx]) => a.maxPoolGrad(dy, x, dx, pool) },
  { name: 'relu / step / square / exp', inputs: [big(14)], outputs: [M20, M20, M20, M20],
    run: (a, [x], [r, s, q, e]) => { a.relu(x, r); a.step(x, s, 0.1); a.square(x, q); a.exp(x, e); } },
  { name: 'binary ops (same shape and channel broadcast)', inputs: [big(15), big(16), rnd(C, 17)], outputs: Array(8).fill(M20),
    run: (a, [x, y, c], outs) => {
      const shape = Int32Array.from([M20 / C, C]), full = Int32Array.from([C, 1]), chan = Int32Array.from([0, 1]);
      for (let op = 0; op < 7; op++) a.binary(op, x, y, outs[op], shape, full, full);
      a.binary(3, x, c, outs[7], shape, full, chan);
    } },
  { name: 'reduceSum (rows, columns, mean)', inputs: [big(18)], outputs: [M20 / C, C, 4 * C],
    run: (a, [x], [rows, cols, mid]) => {
      a.reduceSum(x, rows, M20 / C, C, 1, 1);
      a.reduceSum(x, cols, 1, M20 / C, C, 1);
      a.reduceSum(x, mid, 4, M20 / (4 * C), C, 1 / (M20 / (4 * C)));
    } },
  { name: 'slice / tile / placeRows', inputs: [big(19), rnd(M20 / 2, 20)], outputs: [M20 / 2, M20, M20],
    run: (a, [x, h], [sl, ti, pr]) => {
      a.slice(x, sl, Int32Array.from([N, H, W, C]), Int32Array.from([0, 0, 0, 16]), Int32Array.from([N, H, W, 32]));
      a.tile(h, ti, Int32Array.from([N / 2, H, W, C]), Int32Array.from([N, H, W, C]));
      a.placeRows(h, pr, M20 / C, C / 2, C, C / 2);
    } },
  { name: 'batchNorm / bnStats / bnBackward', inputs: [big(21), big(22), rnd(C, 23), rnd(C, 24).map((v) => v + 1), rnd(C, 25), rnd(C, 26)],
    outputs: [M20, C, C, M20, C, C],
    run: (a, [x, dy, mean, variance, beta, gamma], [y, m, v, dx, dg, db]) => {
      a.batchNorm(x, y, mean, variance, beta, gamma, 1e-5);
      a.bnStats(x, C, m, v);
      a.bnBackward(dy, x, m, v, gamma, 1e-5, dx, dg, db);
    } },
];

function runCase(a: NativeAddon, c: KernelCase, shift = 0): Float32Array[] {
  const ins = shift === 0 ? c.inputs : c.inputs.map((x) => shifted(x, shift));
  const outs = c.outputs.map((n) => (shift === 0 ? new Float32Array(n) : shifted(new Float32Array(n), shift)));
  c.run(a, ins, outs);
  return outs;
}

function expectSame(got: Float32Array[], ref: Float32Array[], what: string): void {
  got.forEach((g, i) => {
    const at = firstBitDiff(g, ref[i]);
    expect(at, `${what}, output ${i}: first differing element ${at} (${g[at]} vs ${ref[i][at]})`).toBe(-1);
  });
}

/** Trains a fresh seeded tiny U-Net on the active backend; returns its loss curve and weights. */
async function trainTiny() {
  const data = makeSquaresDataset(8, 16, 3);
  const cfg = { epochs: 3, batchSize: 4, maxSteps: 6, optimizer: 'adam', lr: 0.01, loss: 'ce+dice', seed: 11 } as const;
  const unet = createUNet({ inChannels: 1, numClasses: 2, baseChannels: 4, depth: 2 }, 5);
  const r = await trainLocal(unet, data, cfg);
  const w = unet.getWeights();
  unet.dispose();
  return { steps: r.steps, loss: r.lossCurve, w };
}

function expectSameWeights(got: Awaited<ReturnType<typeof trainTiny>>, ref: Awaited<ReturnType<typeof trainTiny>>): void {
  expect(got.steps).toBe(6);
  expect(got.loss).toEqual(ref.loss);
  expect(got.w.map((t) => t.name)).toEqual(ref.w.map((t) => t.name));
  got.w.forEach((t, i) => expect(firstBitDiff(t.data, ref.w[i].data), `${t.name}`).toBe(-1));
}

d('fedsfda-native determinism', () => {
  let addon: NativeAddon;
  let poolBefore = 1;
  beforeAll(() => {
    addon = registerNativeBackend();
    poolBefore = addon.threads();
  });
  afterAll(() => {
    addon.threads(poolBefore);
  });

  it.each(cases.map((c) => [c.name, c] as const))('%s: bit-identical on repeats, across 1/2/3 threads and buffer alignments', (_n, c) => {
    addon.threads(2);
    const ref = runCase(addon, c);
    for (const o of ref) expect(o.some((v) => v !== 0), 'outputs are not trivially zero').toBe(true);
    for (let r = 0; r < 3; r++) expectSame(runCase(addon, c), ref, `repeat ${r}`);
    for (const t of [1, 3]) {
      addon.threads(t);
      expectSame(runCase(addon, c), ref, `${t} threads`);
    }
    addon.threads(2);
    for (const shift of [1, 3]) expectSame(runCase(addon, c, shift), ref, `arrays shifted by ${shift} floats`);
  });

  it('a seeded trainLocal run (16x16, base 4, 6 steps) gives bit-identical weights, also with another pool size', async () => {
    await tf.setBackend(NATIVE_BACKEND);
    addon.threads(2);
    const a = await trainTiny();
    const b = await trainTiny();
    addon.threads(1);
    const c = await trainTiny();
    addon.threads(poolBefore);
    expectSameWeights(b, a);
    expectSameWeights(c, a);
  });
});

describe('wasm determinism', () => {
  afterAll(() => resetEngine());

  it('a seeded trainLocal run gives bit-identical weights on wasm too (our JS/wasm training kernels, XNNPACK)', async () => {
    resetEngine();
    await initEngine({ backend: 'wasm' });
    const a = await trainTiny();
    const b = await trainTiny();
    expectSameWeights(b, a);
  });
});
