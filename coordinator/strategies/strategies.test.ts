/** One contract, run over every strategy (STYLE.md habit 7), then the specifics of each. */
import { describe, expect, it } from 'vitest';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { FedAvg, sampleSites } from './fedavg.ts';
import { FedProx } from './fedprox.ts';
import { FedBN, isBatchNormName } from './fedbn.ts';
import { FedAdagrad, FedAdam, FedYogi, fedOptStep } from './fed-opt.ts';
import type { FitResult, Strategy } from './strategy.ts';

const global: WeightSet = [
  { name: 'enc1.conv1.w', shape: [2], data: new Float32Array([0, 0]) },
  { name: 'enc1.bn1.gamma', shape: [1], data: new Float32Array([1]) },
];
const sites = [{ siteId: 'b' }, { siteId: 'a' }, { siteId: 'c' }];
const result = (siteId: string, w: number[], g: number, n: number): FitResult => ({
  siteId,
  numExamples: n,
  metrics: { trainLoss: n },
  weights: [
    { name: 'enc1.conv1.w', shape: [2], data: new Float32Array(w) },
    { name: 'enc1.bn1.gamma', shape: [1], data: new Float32Array([g]) },
  ],
});

const strategies: Array<[string, () => Strategy]> = [
  ['fedavg', () => new FedAvg()],
  ['fedprox', () => new FedProx({ proximalMu: 0.01 })],
  ['fedbn', () => new FedBN()],
  ['fedadam', () => new FedAdam()],
  ['fedyogi', () => new FedYogi()],
  ['fedadagrad', () => new FedAdagrad()],
];

describe.each(strategies)('Strategy contract: %s', (_name, make) => {
  it('configures every site with a valid fit config', () => {
    const ins = make().configureFit(3, sites, global);
    expect(ins.map((i) => i.siteId)).toEqual(['a', 'b', 'c']);
    for (const i of ins) expect(i.config).toMatchObject({ round: 3, localEpochs: 1, lr: 0.01 });
  });

  it('keeps the model (null) when nothing came back, and reports failures without throwing', () => {
    expect(make().aggregateFit(1, [], [{ siteId: 'a', stage: 'fit', code: 'timeout', reason: 't' }], global)).toBeNull();
  });

  it('returns weights of the same names and shapes, without mutating the global model', () => {
    const out = make().aggregateFit(1, [result('a', [1, 2], 3, 1), result('b', [3, 4], 5, 3)], [], global);
    expect(out).not.toBeNull();
    expect(out!.weights.map((t) => [t.name, t.shape])).toEqual(global.map((t) => [t.name, t.shape]));
    expect(Array.from(global[0].data)).toEqual([0, 0]);
    expect(out!.metrics.trainLoss).toBeCloseTo((1 * 1 + 3 * 3) / 4, 10);
  });

  it('aggregates evaluation metrics by example count', () => {
    expect(make().aggregateEvaluate(1, [{ siteId: 'a', numExamples: 1, metrics: { dice: 0.2 } }, { siteId: 'b', numExamples: 3, metrics: { dice: 0.6 } }], [])).toEqual({
      dice: expect.closeTo(0.5, 10),
    });
  });
});

describe('strategy specifics', () => {
  it('FedAvg: weighted mean by example count', () => {
    const out = new FedAvg().aggregateFit(1, [result('a', [1, 2], 3, 1), result('b', [3, 4], 5, 3)], [], global)!;
    expect(Array.from(out.weights[0].data)).toEqual([2.5, 3.5]);
    expect(Array.from(out.weights[1].data)).toEqual([4.5]);
  });

  it('FedAvg: minFitResults keeps the model when too few sites replied', () => {
    expect(new FedAvg({ minFitResults: 2 }).aggregateFit(1, [result('a', [1, 2], 3, 1)], [], global)).toBeNull();
  });

  it('FedProx: adds proximalMu to the fit config', () => {
    expect(new FedProx({ proximalMu: 0.1 }).configureFit(1, sites, global)[0].config.proximalMu).toBe(0.1);
  });

  it('FedBN: BN tensors stay at the global values and sites are told to keep theirs', () => {
    const s = new FedBN();
    const out = s.aggregateFit(1, [result('a', [1, 2], 3, 1), result('b', [3, 4], 5, 3)], [], global)!;
    expect(Array.from(out.weights[0].data)).toEqual([2.5, 3.5]);
    expect(Array.from(out.weights[1].data)).toEqual([1]);
    expect(s.configureFit(1, sites, global)[0].config.keepLocalBatchNorm).toBe(true);
    expect(['enc1.bn1.gamma', 'dec.bn.mean', 'x.groupnorm.beta'].every(isBatchNormName)).toBe(true);
    expect(['enc1.conv1.w', 'bneck.conv.w'].some(isBatchNormName)).toBe(false);
  });

  it('FedAdam/FedYogi/FedAdagrad: one step matches Reddi et al. 2021 Algorithm 2 by hand', () => {
    const h = { eta: 0.1, beta1: 0.9, beta2: 0.99, tau: 1e-3 };
    const x = new Float32Array([1]);
    const avg = new Float32Array([3]); // Delta = 2
    const tau2 = h.tau * h.tau;
    const m1 = 0.1 * 2;
    const cases: Array<['adam' | 'yogi' | 'adagrad', number]> = [
      ['adam', 0.99 * tau2 + 0.01 * 4],
      ['yogi', tau2 - 0.01 * 4 * Math.sign(tau2 - 4)],
      ['adagrad', tau2 + 4],
    ];
    for (const [kind, v1] of cases) {
      const m = new Float32Array(1);
      const v = new Float32Array([tau2]);
      const out = fedOptStep(kind, x, avg, m, v, h);
      expect(m[0]).toBeCloseTo(m1, 6);
      expect(v[0]).toBeCloseTo(v1, 6);
      expect(out[0]).toBeCloseTo(1 + (0.1 * m1) / (Math.sqrt(v1) + h.tau), 5);
    }
  });

  it('FedAdam: optimizer state survives export/import (checkpoint resume)', () => {
    const a = new FedAdam();
    const r = [result('a', [1, 2], 3, 1)];
    const w1 = a.aggregateFit(1, r, [], global)!.weights;
    const b = new FedAdam();
    b.importState(a.exportState());
    const w2a = a.aggregateFit(2, r, [], w1)!.weights;
    const w2b = b.aggregateFit(2, r, [], w1)!.weights;
    expect(Array.from(w2b[0].data)).toEqual(Array.from(w2a[0].data));
  });

  it('sampleSites: a fraction picks a reproducible subset', () => {
    const many = Array.from({ length: 10 }, (_, i) => ({ siteId: `s${i}` }));
    const a = sampleSites(many, 0.3, 1, 7);
    expect(a).toHaveLength(3);
    expect(sampleSites(many, 0.3, 1, 7)).toEqual(a);
    expect(new Set(a.map((s) => s.siteId)).size).toBe(3);
  });
});
