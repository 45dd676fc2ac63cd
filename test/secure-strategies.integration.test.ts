/**
 * Contract test (STYLE.md habit 7): every strategy gives the same global model with and without secure
 * aggregation, over real socket.io on port 0 with 3 in-process sites. Under FedBN the batch-norm tensor is not in
 * the masked vector at all and the global BN tensor is left as it was.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startCoordinator } from '../coordinator/start-coordinator.ts';
import { FedAdam, FedYogi } from '../coordinator/strategies/fed-opt.ts';
import { FedAvg } from '../coordinator/strategies/fedavg.ts';
import { FedBN } from '../coordinator/strategies/fedbn.ts';
import { FedProx } from '../coordinator/strategies/fedprox.ts';
import type { Strategy } from '../coordinator/strategies/strategy.ts';
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity } from '../protocol/identity.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import type { SecAggReply } from '../protocol/secagg/messages.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import type { LocalTrainer } from '../site-agent/client/local-trainer.ts';
import { LeastSquaresTrainer, linearWeights, makeLinearData } from './support/least-squares-trainer.ts';
import { STAGE_BOUND_MS } from './support/bounds.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const SITES = [30, 20, 10].map((n, i) => ({
  id: `site-${i}`,
  identity: generateIdentity(),
  data: makeLinearData(300 + i, n, 3, [1, -2, 0.5], 0.3),
  /** Site-local batch-norm statistics (FedBN keeps them at the site). */
  bn: Float32Array.of(i + 1, -(i + 1)),
}));

/** Least squares plus a BN-like tensor the site owns: under FedBN (`keepLocalBatchNorm`) it keeps its own values. */
function trainer(site: (typeof SITES)[number]): LocalTrainer {
  const ls = new LeastSquaresTrainer(site.data, 5);
  return {
    fit: async (global, config) => {
      const out = await ls.fit(global, config);
      const bnGlobal = global.find((t) => t.name === 'bn1.mean')!;
      const bn = config.keepLocalBatchNorm ? site.bn : Float32Array.from(bnGlobal.data, (x, j) => x + site.bn[j]);
      return { ...out, weights: [...out.weights, { name: 'bn1.mean', shape: [2], data: new Float32Array(bn) }] };
    },
    evaluate: (global, config) => ls.evaluate(global, config),
  };
}

function initial(): WeightSet {
  return [...linearWeights(Float32Array.of(0.2, 0, -0.1), 0.05), { name: 'bn1.mean', shape: [2], data: new Float32Array(2) }];
}

async function run(strategy: Strategy, secure: boolean, onReply?: (r: SecAggReply) => void): Promise<WeightSet> {
  const enrollment = new Enrollment();
  for (const s of SITES) enrollment.allow(s.id, s.identity.publicKey);
  const coord = await startCoordinator({
    identity: generateIdentity(),
    enrollment,
    initialWeights: initial(),
    rounds: 2,
    minSites: 3,
    strategy,
    port: 0,
    timeouts: { fitMs: STAGE_BOUND_MS, evaluateMs: STAGE_BOUND_MS },
    ...(secure ? { secureAggregation: { clip: 8, maxExamples: 100 } } : {}),
    ...(onReply ? { secAggTestHooks: { onReply: (_from: string, r: SecAggReply) => onReply(r) } } : {}),
  });
  cleanups.push(() => coord.close());
  await Promise.all([...SITES.map((s) => runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer: trainer(s) })), coord.done]);
  for (const r of coord.history()) expect(r.aggregated).toBe(true);
  return coord.weights();
}

const strategies: [string, () => Strategy, number][] = [
  ['fedavg', () => new FedAvg({ localEpochs: 2, lr: 0.1, minFitResults: 3 }), 1e-6],
  ['fedprox', () => new FedProx({ localEpochs: 2, lr: 0.1, proximalMu: 0.1, minFitResults: 3 }), 1e-6],
  ['fedadam', () => new FedAdam({ localEpochs: 2, lr: 0.1, minFitResults: 3 }), 1e-4],
  ['fedyogi', () => new FedYogi({ localEpochs: 2, lr: 0.1, minFitResults: 3 }), 1e-4],
  ['fedbn', () => new FedBN({ localEpochs: 2, lr: 0.1, minFitResults: 3 }), 1e-6],
];

describe.each(strategies)('%s with and without secure aggregation', (name, make, tol) => {
  it('reaches the same global model', async () => {
    const lengths: number[] = [];
    const plain = await run(make(), false);
    const secure = await run(make(), true, (r) => {
      if (r.type === 'secagg/masked-vector') lengths.push(r.masked.length);
    });
    for (const t of plain) {
      const s = secure.find((x) => x.name === t.name)!;
      for (let i = 0; i < t.data.length; i++) expect(Math.abs(s.data[i] - t.data[i]), `${t.name}[${i}]`).toBeLessThanOrEqual(tol);
    }
    // linear.w (3) + linear.b (1) + examples (1) + trainLoss and its weight (2), plus bn1.mean (2) unless FedBN.
    expect(new Set(lengths)).toEqual(new Set([name === 'fedbn' ? 7 : 9]));
    if (name === 'fedbn') expect(Array.from(secure.find((t) => t.name === 'bn1.mean')!.data)).toEqual([0, 0]);
  });
});
