/**
 * Tuning harness of federated multi-target adaptation, for tuning seeds that are NOT the scenario's reported seeds:
 * prepares every seed once (federated source model, cached in --cache DIR; every site's input curve), then runs each
 * variant (deep-merged into the scenario) alone and federated, printing every site's test Dice after every round
 * (round 0: the input curve + AdaBN, before any mean-teacher step). Target labels are used for scoring only.
 *   npx tsx simulations/sfda/tune-multi-target.ts --config simulations/scenarios/sfda-multi-target.json \
 *     --seeds 101,102,103 --variants '[{}, {"adapt":{"rounds":12}}]' [--modes alone,federated] [--cache /tmp/mt-cache] [--no-rounds]
 * Variants may change anything but the source side and the input adapter (both are prepared once per seed).
 */
import { readFile } from 'node:fs/promises';
import { adaptAdaBN, applyCurve, evaluateSegmentation, toUnlabeled } from '../../site-agent/adapt/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { adaptSites, MultiTargetError, parseMultiTargetConfig, prepareSeed, type AdaptMode, type MultiTargetConfig } from './multi-target.ts';
import { deepMerge, diskSourceCache } from './run-suite.ts';

const arg = (k: string): string | undefined => {
  const i = process.argv.indexOf(k);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const { initEngine } = await import('../../site-agent/engine/index.ts');
await initEngine();
const file = arg('--config') ?? 'simulations/scenarios/sfda-multi-target.json';
const raw = JSON.parse(await readFile(file, 'utf8')) as Record<string, unknown>;
const seeds = (arg('--seeds') ?? '101,102,103').split(',').map(Number);
const variants = JSON.parse(arg('--variants') ?? '[{}]') as Record<string, unknown>[];
const modes = (arg('--modes') ?? 'alone,federated').split(',') as AdaptMode[];
const perRound = !process.argv.includes('--no-rounds');
const cache = arg('--cache') !== undefined ? diskSourceCache(arg('--cache')!) : undefined;
const base = parseMultiTargetConfig(raw, file);
// The scenario's own seeds are its reported ones (for sfda-multi-target-mricron.json 1-9): never tuned on.
if (seeds.some((s) => base.seeds.includes(s))) throw new MultiTargetError(`tuning on the scenario's reported seeds (${base.seeds.join(', ')}) is not allowed`);
const cfgs: MultiTargetConfig[] = variants.map((v) => parseMultiTargetConfig(deepMerge(raw, v), JSON.stringify(v)));
for (const c of cfgs) {
  if (JSON.stringify([c.data, c.model, c.federated, (c.adapt.options as { inputAdapter?: unknown }).inputAdapter]) !== JSON.stringify([base.data, base.model, base.federated, (base.adapt.options as { inputAdapter?: unknown }).inputAdapter])) {
    throw new Error('a variant changes the source side or the input adapter; give it its own --config');
  }
}
const f = (v: number[]): string => v.map((x) => x.toFixed(3)).join(' ');
const mean = (v: number[]): number => v.reduce((a, b) => a + b, 0) / v.length;
const finals: Record<string, number[][]> = {};
for (const seed of seeds) {
  const phases = { source: 0, adapter: 0, alone: 0, federated: 0 };
  const p = await prepareSeed(base, seed, cache ? { sourceCache: cache } : {}, phases);
  // Round 0: the source model behind each site's curve with target BN statistics (AdaBN).
  const r0 = p.targets.map((t, i) => {
    const u = createUNet({ inChannels: 1, numClasses: base.data.numClasses, baseChannels: base.model.baseChannels, depth: base.model.depth }, seed);
    u.setWeights(p.sourceWeights);
    const curve = p.curves[i];
    const seen = curve ? applyCurve(curve, toUnlabeled(t)) : toUnlabeled(t);
    adaptAdaBN(u, seen, { batchSize: base.adapt.batchSize });
    const test = toUnlabeled(p.tests[i]);
    const d = evaluateSegmentation(u, curve ? applyCurve(curve, test) : test, p.tests[i].labels, p.tests[i].sliceThickness).summary.mean.dice.mean;
    u.dispose();
    return d;
  });
  console.log(`seed ${seed}: source-only ${f(p.sourceOnly)} (mean ${mean(p.sourceOnly).toFixed(3)}); curve+AdaBN ${f(r0)} (mean ${mean(r0).toFixed(3)}); source ${(phases.source / 1000).toFixed(0)} s, adapters ${(phases.adapter / 1000).toFixed(0)} s`);
  for (const [vi, cfg] of cfgs.entries()) {
    for (const mode of modes) {
      const t0 = performance.now();
      const dice = await adaptSites(cfg, p, mode, {
        onProgress: (m) => m.includes('pooled') && console.log(`  v${vi} ${m}`),
        onRound: perRound ? (r) => { const s = r.score(); console.log(`  v${vi} ${mode.padEnd(9)} round ${String(r.round).padStart(2)}: ${f(s)} (mean ${mean(s).toFixed(3)})`); } : undefined,
      });
      console.log(`  v${vi} ${mode.padEnd(9)} final   : ${f(dice)} (mean ${mean(dice).toFixed(3)}) ${((performance.now() - t0) / 1000).toFixed(0)} s  ${JSON.stringify(variants[vi])}`);
      (finals[`v${vi} ${mode}`] ??= []).push(dice);
    }
  }
}
console.log('summary (mean over sites, per seed; then mean):');
for (const [k, rows] of Object.entries(finals)) {
  const perSeed = rows.map(mean);
  const perSite = rows[0].map((_, i) => mean(rows.map((r) => r[i])));
  console.log(`${k.padEnd(14)} sites ${f(perSite)} | seeds ${f(perSeed)} | mean ${mean(perSeed).toFixed(3)}`);
}
