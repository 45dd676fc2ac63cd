import { describe, expect, it } from 'vitest';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { PrivacyError, sampledGaussianEpsilon, seededNoiseSource } from '../../protocol/privacy/index.ts';
import { withDifferentialPrivacy } from './dp-config.ts';
import { BN_VARIANCE_FLOOR, DpFedAvg, hasPrivacyAccounting } from './dp-fedavg.ts';
import { FedAvg } from './fedavg.ts';
import { FedBN } from './fedbn.ts';
import { FedAdam } from './fed-opt.ts';
import type { FitResult } from './strategy.ts';

/** Two-sided normal quantile for a false-alarm rate of 1e-5 (deterministic seeds: these tests cannot flake). */
const Z_1E5 = 4.42;

function model(d: number, bn = 1): WeightSet {
  return [
    { name: 'enc1.conv1.w', shape: [d], data: new Float32Array(d) },
    { name: 'enc1.bn1.gamma', shape: [bn], data: new Float32Array(bn).fill(1) },
  ];
}
function reply(siteId: string, global: WeightSet, delta: (i: number) => number, n = 10): FitResult {
  return { siteId, numExamples: n, metrics: { trainLoss: 1 }, weights: global.map((t) => ({ ...t, data: t.data.map((v, i) => v + delta(i)) })) };
}
const dp = (inner = new FedAvg(), over: Partial<ConstructorParameters<typeof DpFedAvg>[1]> = {}) =>
  new DpFedAvg(inner, { noiseMultiplier: 1, clipping: { mode: 'fixed', clip: 1 }, sitesPerRound: 3, totalSites: 3, rounds: 10, delta: 1e-5, noise: seededNoiseSource('dp-test'), ...over });

function norm(a: Float32Array, b: Float32Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += (a[i] - b[i]) ** 2;
  return Math.sqrt(s);
}

describe('DP-FedAvg, central mode', () => {
  it('clipping bounds every contribution: a site cannot move the model by more than C/m plus noise', () => {
    const g = model(1000, 4);
    const tiny = dp(new FedAvg(), { noiseMultiplier: 1e-9 });
    // one honest site with a small update, two sites with huge ones (a poisoning or an outlier patient)
    const out = tiny.aggregateFit(1, [reply('a', g, () => 1e-4), reply('b', g, () => 1e3), reply('c', g, (i) => (i % 2 ? 50 : -50))], [], g)!;
    const moved = Math.sqrt(norm(out.weights[0].data, g[0].data) ** 2 + norm(out.weights[1].data, g[1].data) ** 2);
    // each clipped delta has norm <= 1, so their mean has norm <= 1 (and >= (1 + 1 - tiny)/3 ... by direction): bounded by C
    expect(moved).toBeLessThanOrEqual(1 + 1e-6);
    // and the huge site alone moves the mean by exactly C/m along its direction
    const alone = dp(new FedAvg(), { noiseMultiplier: 1e-9, sitesPerRound: 1, totalSites: 1 }).aggregateFit(1, [reply('b', g, () => 1e3)], [], g)!;
    expect(Math.sqrt(norm(alone.weights[0].data, g[0].data) ** 2 + norm(alone.weights[1].data, g[1].data) ** 2)).toBeCloseTo(1, 5);
  });

  it('adds noise of std z*C/m to the mean (variance test, false-alarm rate 1e-5)', () => {
    const d = 200_000;
    const g = model(d);
    const s = dp(new FedAvg(), { noiseMultiplier: 1.3, clipping: { mode: 'fixed', clip: 0.5 } });
    const out = s.aggregateFit(1, ['a', 'b', 'c'].map((id) => reply(id, g, () => 0)), [], g)!;
    const want = (1.3 * 0.5) / 3;
    const x = out.weights[0].data;
    let m2 = 0;
    for (let i = 0; i < d; i++) m2 += x[i] * x[i];
    const variance = m2 / d;
    // var of the sample variance of N(0, s^2) with known mean 0 is 2 s^4 / d
    expect(Math.abs(variance - want ** 2) / (want ** 2 * Math.sqrt(2 / d))).toBeLessThan(Z_1E5);
    expect(out.metrics['dp.noiseStd']).toBeCloseTo(want, 12);
  });

  it("keeps FedBN's local batch-norm tensors out of the noised vector", () => {
    const g = model(100, 8);
    const out = dp(new FedBN()).aggregateFit(1, ['a', 'b', 'c'].map((id) => reply(id, g, () => 0.3)), [], g)!;
    expect(Array.from(out.weights[1].data)).toEqual(Array.from(g[1].data)); // BN untouched: no noise, no update
    expect(norm(out.weights[0].data, g[0].data)).toBeGreaterThan(0);
  });

  it('floors noised batch-norm running variances (post-processing: a site cannot use a negative variance)', () => {
    const g: WeightSet = [
      { name: 'enc1.conv1.w', shape: [4], data: new Float32Array(4) },
      { name: 'enc1.bn1.var', shape: [1000], data: new Float32Array(1000).fill(0.01) },
      { name: 'enc1.bn1.mean', shape: [1000], data: new Float32Array(1000) },
    ];
    const out = dp(new FedAvg(), { noiseMultiplier: 3 }).aggregateFit(1, ['a', 'b', 'c'].map((id) => reply(id, g, () => 0)), [], g)!;
    const v = out.weights.find((t) => t.name === 'enc1.bn1.var')!.data;
    expect(Math.min(...v)).toBe(Math.fround(BN_VARIANCE_FLOOR));
    expect(Math.min(...out.weights.find((t) => t.name === 'enc1.bn1.mean')!.data)).toBeLessThan(0); // means stay as noised
  });

  it('works around a server optimizer (the noised mean is its pseudo-gradient)', () => {
    const g = model(10);
    const out = dp(new FedAdam()).aggregateFit(1, ['a', 'b', 'c'].map((id) => reply(id, g, () => 0.01)), [], g);
    expect(out).not.toBeNull();
    expect(out!.weights[0].data.every((v) => Number.isFinite(v))).toBe(true);
  });

  it('accounts every round in the ledger exactly as the accountant says', () => {
    const g = model(10);
    const s = dp();
    for (let r = 1; r <= 4; r++) s.aggregateFit(r, ['a', 'b', 'c'].map((id) => reply(id, g, () => 0.1)), [], g);
    const st = s.privacyStatus();
    expect(st.roundsAccounted).toBe(4);
    expect(st.epsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 1, steps: 4, delta: 1e-5 }).epsilon, 12);
    expect(st.plannedEpsilon).toBeCloseTo(sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 1, steps: 10, delta: 1e-5 }).epsilon, 12);
    expect(hasPrivacyAccounting(s)).toBe(true);
    // a resumed coordinator keeps counting from its checkpoint
    const resumed = dp();
    resumed.importState(s.exportState());
    expect(resumed.privacyStatus().roundsAccounted).toBe(4);
  });

  it('refuses to start when the planned rounds exceed the budget, and refuses a round past it', () => {
    expect(() => dp(new FedAvg(), { maxEpsilon: 5 })).toThrow(expect.objectContaining({ code: 'budget-exceeded' }));
    const g = model(4);
    const s = dp(new FedAvg(), { rounds: 1, maxEpsilon: sampledGaussianEpsilon({ samplingRate: 1, noiseMultiplier: 1, steps: 1, delta: 1e-5 }).epsilon });
    s.aggregateFit(1, [reply('a', g, () => 0)], [], g);
    expect(() => s.aggregateFit(2, [reply('a', g, () => 0)], [], g)).toThrow(PrivacyError);
  });

  it('calibrates z from a target epsilon over the planned rounds', () => {
    const s = withDifferentialPrivacy(new FedAvg(), { targetEpsilon: 8, clip: 1, seed: 1 }, { rounds: 50, enrolledSites: 3 });
    expect(s.privacyStatus().noiseMultiplier).toBeCloseTo(4.50900912, 6); // reference/opacus-vectors.json
    expect(s.privacyStatus().plannedEpsilon).toBeLessThanOrEqual(8);
    expect(() => withDifferentialPrivacy(new FedAvg(), { clip: 1 } as never, { rounds: 5, enrolledSites: 3 })).toThrow(/exactly one of noiseMultiplier/);
  });

  it('adaptive clipping moves C towards the target quantile of the update norms', () => {
    const g = model(50);
    const s = dp(new FedAvg(), { noiseMultiplier: 0.5, sitesPerRound: 20, totalSites: 20, clipping: { mode: 'adaptive', countStddev: 1 } });
    expect(s.privacyStatus().clip).toBe(0.1); // Flower's default initial clip
    for (let r = 1; r <= 40; r++) {
      const results = Array.from({ length: 20 }, (_, k) => reply(`s${k}`, g, () => (k < 10 ? 0.1 : 0.5) / Math.sqrt(50)));
      s.aggregateFit(r, results, [], g);
    }
    // half the norms are 0.1 and half 0.5: a median anywhere between them is the target
    expect(s.privacyStatus().clip).toBeGreaterThan(0.09);
    expect(s.privacyStatus().clip).toBeLessThan(0.6);
    expect(() => dp(new FedAvg(), { clipping: { mode: 'adaptive' } })).toThrow(/count stddev/); // m = 3: m/20 too small for z = 1
  });

  it('refuses a secure aggregate (the sites must add the noise then)', () => {
    const g = model(4);
    expect(() => dp().aggregateFit(1, [{ ...reply('x', g, () => 0), aggregateOf: ['a', 'b', 'c'] }], [], g)).toThrow(/distributed/);
  });
});
