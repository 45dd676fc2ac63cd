import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import {
  DEFAULT_ORDERS,
  PrivacyLedger,
  calibrateNoiseMultiplier,
  computeRdp,
  epsilonFromRdp,
  erfc,
  isPrivacyError,
  logErfc,
  sampledGaussianEpsilon,
  sampledGaussianRdp,
} from './index.ts';

/**
 * Reference vectors computed by Opacus's own accountant (opacus/accountants/analysis/rdp.py at commit 4d0ebc84, run
 * with numpy + scipy) by `reference/opacus-vectors.py`; regenerate with
 * `python3 protocol/privacy/reference/opacus-vectors.py .../opacus/accountants/analysis/rdp.py`.
 */
interface Vectors {
  epsilon: { q: number; z: number; steps: number; delta: number; epsilon: number; order: number }[];
  rdpPerStep: { q: number; z: number; order: number; rdp: number }[];
  calibrate: { q: number; steps: number; delta: number; epsilon: number; z: number }[];
}
const vectors = JSON.parse(readFileSync(new URL('./reference/opacus-vectors.json', import.meta.url), 'utf8')) as Vectors;

const rel = (a: number, b: number): number => Math.abs(a - b) / Math.abs(b);

describe('RDP accountant of the sampled Gaussian mechanism', () => {
  it('reproduces the Opacus documentation example: eps 0.336 at order 23', () => {
    // Source: the docstring of opacus/accountants/analysis/rdp.py (same example in TF Privacy rdp_accountant.py):
    // [(q=1e-5, sigma=1.0, 10 steps), (q=1e-4, sigma=3.0, 4 steps)], delta=1e-5, orders 2..32 -> (0.336, 23).
    // Running that file gives 0.3363440633925957.
    const orders = Array.from({ length: 31 }, (_, k) => k + 2);
    const ledger = new PrivacyLedger(orders);
    ledger.record({ mechanism: 'sampled-gaussian', label: 'a', samplingRate: 1e-5, noiseMultiplier: 1.0, steps: 10 });
    ledger.record({ mechanism: 'sampled-gaussian', label: 'b', samplingRate: 1e-4, noiseMultiplier: 3.0, steps: 4 });
    const spent = ledger.spent(1e-5);
    expect(spent.order).toBe(23);
    expect(rel(spent.epsilon, 0.3363440633925957)).toBeLessThan(1e-9);
  });

  it.each(vectors.epsilon)('matches Opacus epsilon for q=$q z=$z steps=$steps delta=$delta', (v) => {
    const got = sampledGaussianEpsilon({ samplingRate: v.q, noiseMultiplier: v.z, steps: v.steps, delta: v.delta });
    expect(rel(got.epsilon, v.epsilon)).toBeLessThan(1e-6);
    expect(got.order).toBe(v.order);
  });

  it.each(vectors.rdpPerStep)('matches Opacus per-step RDP for q=$q z=$z at order $order', (v) => {
    expect(rel(sampledGaussianRdp(v.q, v.z, v.order), v.rdp)).toBeLessThan(1e-6);
  });

  it('uses the Opacus default orders (1.1..10.9 step 0.1, then 12..63)', () => {
    expect(DEFAULT_ORDERS).toHaveLength(151);
    expect(DEFAULT_ORDERS[0]).toBe(1.1);
    expect(DEFAULT_ORDERS[98]).toBe(10.9);
    expect(DEFAULT_ORDERS.slice(99, 101)).toEqual([12, 13]);
    expect(DEFAULT_ORDERS.at(-1)).toBe(63);
    expect(DEFAULT_ORDERS.filter((a) => Number.isInteger(a))).toHaveLength(9 + 52); // 2..10 and 12..63
  });

  it('handles the special cases as the reference does', () => {
    // q = 1: the plain Gaussian mechanism, RDP alpha / (2 sigma^2) per step (Mironov 2017, Prop. 7).
    for (const a of [1.5, 2, 7.3, 63]) expect(sampledGaussianRdp(1, 2, a)).toBeCloseTo(a / 8, 14);
    expect(computeRdp(1, 2, 10, [3])[0]).toBeCloseTo(30 / 8, 12);
    // q = 0: nothing released about anyone.
    expect(sampledGaussianRdp(0, 1, 5)).toBe(0);
    // sigma = 0: no privacy.
    expect(sampledGaussianRdp(0.5, 0, 5)).toBe(Infinity);
    expect(sampledGaussianEpsilon({ samplingRate: 0.5, noiseMultiplier: 0, steps: 3, delta: 1e-5 }).epsilon).toBe(Infinity);
    // RDP grows with the order and with q (monotonicity of Renyi divergence).
    const curve = computeRdp(0.05, 1, 1, DEFAULT_ORDERS);
    for (let k = 1; k < curve.length; k++) expect(curve[k]).toBeGreaterThanOrEqual(curve[k - 1]);
    expect(sampledGaussianRdp(0.1, 1, 4)).toBeGreaterThan(sampledGaussianRdp(0.05, 1, 4));
  });

  it('refuses bad arguments with a typed error', () => {
    const bad = [
      () => sampledGaussianRdp(1.5, 1, 2),
      () => sampledGaussianRdp(0.5, -1, 2),
      () => sampledGaussianRdp(0.5, 1, 1),
      () => computeRdp(0.5, 1, 2.5, [2]),
      () => epsilonFromRdp([2], [1], 0),
      () => epsilonFromRdp([2, 3], [1], 1e-5),
      () => calibrateNoiseMultiplier({ samplingRate: 0, steps: 10, delta: 1e-5, epsilon: 1 }),
      () => calibrateNoiseMultiplier({ samplingRate: 1, steps: 10, delta: 1e-5, epsilon: -1 }),
    ];
    for (const f of bad) expect(f).toThrow(expect.objectContaining({ code: 'bad-argument' }));
    try {
      sampledGaussianRdp(Number.NaN, 1, 2);
      expect.unreachable();
    } catch (e) {
      expect(isPrivacyError(e, 'bad-argument')).toBe(true);
    }
  });
});

describe('calibration of the noise multiplier', () => {
  it.each(vectors.calibrate)('matches the Opacus-style bisection for q=$q steps=$steps eps=$epsilon', (v) => {
    const got = calibrateNoiseMultiplier({ samplingRate: v.q, steps: v.steps, delta: v.delta, epsilon: v.epsilon });
    expect(rel(got.noiseMultiplier, v.z)).toBeLessThan(1e-6);
    expect(got.epsilon).toBeLessThanOrEqual(v.epsilon);
    // and it is the round trip: that multiplier gives (just under) the target.
    const back = sampledGaussianEpsilon({ samplingRate: v.q, noiseMultiplier: got.noiseMultiplier, steps: v.steps, delta: v.delta });
    expect(rel(back.epsilon, v.epsilon)).toBeLessThan(1e-6);
  });

  it('says when a target is unreachable', () => {
    expect(() => calibrateNoiseMultiplier({ samplingRate: 1, steps: 1e6, delta: 1e-12, epsilon: 1e-9 })).toThrow(
      expect.objectContaining({ code: 'unreachable-target' }),
    );
  });
});

describe('privacy ledger', () => {
  it('merges identical consecutive events and composes different ones in RDP', () => {
    const ledger = new PrivacyLedger();
    for (let r = 0; r < 5; r++) ledger.record({ mechanism: 'sampled-gaussian', label: 'dp-fedavg', samplingRate: 1, noiseMultiplier: 1, steps: 1 });
    ledger.record({ mechanism: 'zcdp', label: 'stats', rho: 0.01, steps: 1 });
    expect(ledger.events).toHaveLength(2);
    expect(ledger.events[0].steps).toBe(5);
    // q = 1 Gaussian at z = 1 is exactly 1/2-zCDP per step, so 5 steps + 0.01 is rho = 2.51 of zCDP in total.
    const rdp = ledger.rdp();
    DEFAULT_ORDERS.forEach((a, k) => expect(rdp[k]).toBeCloseTo(a * 2.51, 10));
    const report = ledger.report(1e-5);
    expect(report.byLabel['dp-fedavg']).toBeLessThan(report.epsilon);
    expect(report.byLabel.stats).toBeLessThan(report.byLabel['dp-fedavg']);
    expect(report.epsilon).toBeLessThan(report.byLabel['dp-fedavg'] + report.byLabel.stats);
    expect(new PrivacyLedger().spent(1e-5).epsilon).toBe(0);
  });

  it('clones without sharing state', () => {
    const a = new PrivacyLedger();
    a.record({ mechanism: 'zcdp', label: 'x', rho: 0.1, steps: 1 });
    const b = a.clone();
    b.record({ mechanism: 'zcdp', label: 'x', rho: 0.1, steps: 1 });
    expect(a.events[0].steps).toBe(1);
    expect(b.events[0].steps).toBe(2);
  });
});

describe('log erfc', () => {
  it('agrees with scipy (log(erfc(x)) via log(2) + log_ndtr(-x sqrt 2)) across the whole range', () => {
    // Values from scipy 1.10: math.log(2) + scipy.special.log_ndtr(-x * 2**0.5).
    const ref: [number, number][] = [
      [-3, 0.6931361352504468],
      [-0.5, 0.4190391477755597],
      [0, 0],
      [0.3, -0.39843005144008503],
      [1, -1.849605509933249],
      [2, -5.36494126461664],
      [5, -27.200889545537446],
      [30, -903.9741171106442],
      [400, -160006.56383261507],
    ];
    for (const [x, want] of ref) {
      const got = logErfc(x);
      if (want === 0) expect(got).toBe(0);
      else expect(rel(got, want)).toBeLessThan(1e-13);
    }
    expect(erfc(1)).toBeCloseTo(0.15729920705028516, 15);
  });
});
