/**
 * Tuning harness for the adaptation options, run on tuning seeds that are NOT the benchmark's reported seeds:
 * trains the federated source model per seed (cached in --cache DIR), then adapts it with each variant and prints
 * the target test Dice. Target test labels are used for scoring only, as in the benchmark.
 *   npx tsx simulations/sfda/tune-adapt.ts --config simulations/scenarios/sfda-benchmark.json --seeds 101,102,103 \
 *     --method gmm-swd --variants '[{"lr":0.003},{"lr":0.001}]' [--augment '{}' | --no-augment] [--cache /tmp/sfda-tune] [--confusion]
 *     [--set '{"federated":{"rounds":16}}'] [--target-shift scanner-c]
 * Works for `data.anatomy` 'phantom' and 'mricron' (sites built as in run-benchmark.ts). `--confusion` prints, before
 * each score line, the row-normalised true->predicted pixel confusion of the target test set (diagnosis only). The
 * source-only line also gives the model's in-domain Dice on held-out cases of each source scanner.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WeightSet } from '../../protocol/index.ts';
import { adapt, computeSourceStats, evaluateSegmentation, isAdaptMethod, poolSourceStats, toUnlabeled, type AdaptOptions } from '../../site-agent/adapt/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { parseSfdaBenchmarkConfig } from './benchmark-config.ts';
import { trainFederatedSource } from './federated-source.ts';
import { benchmarkSite } from './run-benchmark.ts';
import { IntensityAugmentSchema } from '../../site-agent/training/index.ts';

const arg = (k: string): string | undefined => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const { initEngine } = await import('../../site-agent/engine/index.ts');
await initEngine();
// `--set '{"federated":{"rounds":12}}'` deep-merges overrides into the scenario (tuning variants of the source side).
const deepMerge = (a: unknown, b: unknown): unknown => {
  if (typeof a !== 'object' || a === null || Array.isArray(a) || typeof b !== 'object' || b === null || Array.isArray(b)) return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out;
};
const rawCfg = JSON.parse(await readFile(arg('--config') ?? 'simulations/scenarios/sfda-benchmark.json', 'utf8')) as unknown;
const cfg = parseSfdaBenchmarkConfig(arg('--set') !== undefined ? deepMerge(rawCfg, JSON.parse(arg('--set')!)) : rawCfg);
const seeds = (arg('--seeds') ?? '101,102,103').split(',').map(Number);
const methods = (arg('--method') ?? 'gmm-swd').split(',');
const variants = JSON.parse(arg('--variants') ?? '[{}]') as Record<string, unknown>[];
const augment = process.argv.includes('--no-augment')
  ? undefined
  : arg('--augment') !== undefined
    ? IntensityAugmentSchema.parse(JSON.parse(arg('--augment')!))
    : cfg.federated.augment;
const cache = arg('--cache') ?? '/tmp/sfda-tune';
await mkdir(cache, { recursive: true });
const d = cfg.data;
// Same site construction as run-benchmark.ts (phantoms, or mricron anatomy read back through the dataset loader).
const site = (seed: number, shift: (typeof d.target)['shift'], numCases: number, tag: string): Promise<SliceDataset> =>
  benchmarkSite(cfg, seed, shift, numCases, tag);
// `--target-shift NAME` adapts the same (cached) source models to another target scanner, e.g. a non-inverted one as a
// sanity check of label-free choices such as the input polarity check.
const targetShift = (arg('--target-shift') ?? d.target.shift) as (typeof d.target)['shift'];
const results: number[][] = [];
const key = JSON.stringify({ fed: { ...cfg.federated, augment }, model: cfg.model, data: cfg.data });
let hash = 0;
for (const ch of key) hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
for (const seed of seeds) {
  const sources = await Promise.all(d.sourceSites.map((s, i) => site(seed * 100 + i, s.shift, s.numCases, `src${i}`)));
  const targetAdapt = await site(seed * 100 + 50, targetShift, d.target.adaptCases, 'tgt-adapt');
  const targetTest = await site(seed * 100 + 51, targetShift, d.target.testCases, 'tgt-test');
  const unet = createUNet({ inChannels: 1, numClasses: d.numClasses, baseChannels: cfg.model.baseChannels, depth: cfg.model.depth }, seed);
  const file = join(cache, `${seed}-${hash.toString(16)}.json`);
  try {
    const saved = JSON.parse(await readFile(file, 'utf8')) as { name: string; shape: number[]; data: number[] }[];
    unet.setWeights(saved.map((t) => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.data) })));
  } catch {
    await trainFederatedSource(unet, sources, { ...cfg.federated, augment, seed });
    await writeFile(file, JSON.stringify(unet.getWeights().map((t) => ({ ...t, data: Array.from(t.data) }))));
  }
  const federated: WeightSet = unet.getWeights();
  const stats = poolSourceStats(sources.map((s) => computeSourceStats(unet, s)));
  const testImages = toUnlabeled(targetTest);
  // Scoring only (target test labels never reach adapt()). With --confusion, also prints for each true class where
  // its pixels went (row-normalised): a class swap shows as mass off the diagonal on a permuted column.
  const score = (): number => {
    const ev = evaluateSegmentation(unet, testImages, targetTest.labels, targetTest.sliceThickness);
    if (process.argv.includes('--confusion')) {
      const k = d.numClasses;
      const m = Array.from({ length: k }, () => new Array<number>(k).fill(0));
      ev.predictions.forEach((p, i) => m[targetTest.labels[i]][p]++);
      console.log(`  confusion (true row -> predicted col, row %): ${m.map((r) => { const t = r.reduce((a, b) => a + b, 0) || 1; return `[${r.map((x) => ((100 * x) / t).toFixed(0)).join(' ')}]`; }).join(' ')}`);
    }
    return ev.summary.mean.dice.mean;
  };
  const row = [score()];
  // In-domain Dice on HELD-OUT source volumes (new cases of each source scanner, never trained on).
  const srcHeld = await Promise.all(d.sourceSites.map((s, i) => site(seed * 100 + 60 + i, s.shift, d.target.testCases, `src${i}-test`)));
  const heldDice = srcHeld.map((h) => evaluateSegmentation(unet, toUnlabeled(h), h.labels, h.sliceThickness).summary);
  const perClass = heldDice.map((h) => h.perClass.map((c) => c.dice.mean.toFixed(2)).join('/'));
  console.log(`seed ${seed}: source-only ${row[0].toFixed(3)} (held-out source Dice ${heldDice.map((h) => h.mean.dice.mean.toFixed(3)).join(', ')}; per class ${perClass.join(', ')})`);
  for (const method of methods) {
    if (!isAdaptMethod(method)) throw new Error(`unknown method ${method}`);
    for (const v of variants) {
      unet.setWeights(federated);
      const t0 = performance.now();
      const opts = { ...cfg.adapt.common, ...((cfg.adapt.methods as Record<string, Record<string, unknown> | undefined>)[method] ?? {}), batchSize: cfg.adapt.batchSize, seed, ...v } as AdaptOptions;
      const rep = adapt(method, unet, toUnlabeled(targetAdapt), stats, opts);
      const dice = score();
      row.push(dice);
      console.log(`seed ${seed}: ${method} ${JSON.stringify(v)} Dice ${dice.toFixed(3)} (${((performance.now() - t0) / 1000).toFixed(1)} s, last-epoch loss ${(rep.losses.slice(-8).reduce((a, b) => a + b, 0) / Math.min(8, rep.losses.length)).toFixed(4)}) ${rep.notes.join(' | ')}`);
    }
  }
  results.push(row);
  unet.dispose();
}
const labels = ['source-only', ...methods.flatMap((m) => variants.map((v) => `${m} ${JSON.stringify(v)}`))];
labels.forEach((l, j) => {
  const v = results.map((r) => r[j]);
  console.log(`MEAN ${(v.reduce((a, b) => a + b, 0) / v.length).toFixed(3)}  ${l}  [${v.map((x) => x.toFixed(3)).join(' ')}]`);
});
