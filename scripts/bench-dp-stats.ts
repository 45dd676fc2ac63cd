/**
 * Does a differentially private source-statistics package still let a new hospital adapt? The SFDA benchmark's
 * federated source model (simulations/sfda, FedAvg in process) is adapted on the unlabelled target with GMM+SWD and
 * OSUDA (both read the package) from the clear pooled package and from DP packages at several epsilons, and AdaBN
 * (which reads no package) as the reference; Dice on the labelled target test cases.
 * The DP package is built exactly as a run does it (site-agent/adapt/dp-source-stats.ts per site: per-unit clipped,
 * normalised, scaled contributions; summed; noised; unscaled and post-processed as coordinator/storage/run-artifacts.ts
 * does), with central Gaussian noise of std z Delta_s. Distributed mode adds the same variance as discrete Gaussian
 * shares (protocol/privacy/distributed-noise.test.ts checks the equality), so the adaptation sees the same package
 * distribution. z is calibrated over TWO releases (source statistics and class histogram, as a run releases both).
 *
 *   npx tsx scripts/bench-dp-stats.ts --config simulations/scenarios/sfda-benchmark.json --epsilons 8,3,1 \
 *     --unit case [--seeds 1,2,3] [--feature-clip B] [--activation-clip A] [--max-units U] [--methods gmm-swd,osuda] [--magnitudes]
 * --epsilons inf: the clipped, normalised package without noise; --feature-clip 8,16: several B in one run.
 * --magnitudes prints the latent feature norms and BN input means of the trained model (to choose B and A on seeds
 * that are not reported).
 */
import { readJsonFile } from '../protocol/common/index.ts';
import { sourceStatsFromVectors } from '../protocol/index.ts';
import {
  addCentralStatisticsNoise,
  isNoisedStatistic,
  postProcessDpSourceStats,
  seededNoiseSource,
  sourceStatsUnitBound,
  statisticsNoiseMultiplier,
  statisticsScale,
  unscaleSourceStatsSums,
  type StatisticsDpRequest,
} from '../protocol/privacy/index.ts';
import { adapt, computeSourceStats, dpSourceStatsVectors, evaluateSegmentation, poolSourceStats, toUnlabeled, type AdaptOptions, type SourceStats } from '../site-agent/adapt/index.ts';
import { createUNet, type UNet } from '../site-agent/model/index.ts';
import { initEngine } from '../site-agent/engine/index.ts';
import { benchmarkSiteData } from '../simulations/sfda/benchmark-site.ts';
import { parseSfdaBenchmarkConfig } from '../simulations/sfda/benchmark-config.ts';
import { trainFederatedSource } from '../simulations/sfda/federated-source.ts';
import { badOption, scriptOptions } from './script-options.ts';

const SCRIPT = 'bench-dp-stats';
const values = scriptOptions(
  SCRIPT,
  {
    config: { type: 'string', default: 'simulations/scenarios/sfda-benchmark.json' },
    epsilons: { type: 'string', default: '8,3,1' },
    unit: { type: 'string', default: 'case' },
    seeds: { type: 'string' },
    'feature-clip': { type: 'string', default: '8' },
    'activation-clip': { type: 'string', default: '8' },
    'max-units': { type: 'string', default: '64' },
    delta: { type: 'string', default: '1e-5' },
    magnitudes: { type: 'boolean', default: false },
    methods: { type: 'string', default: 'gmm-swd,osuda' },
  },
  '[--config FILE] [--epsilons 8,3,1|inf] [--unit case|slice] [--seeds 1,2] [--feature-clip B] [--activation-clip A] [--max-units N] [--delta D] [--magnitudes] [--methods gmm-swd,osuda]',
);
const unit = values.unit as 'case' | 'slice';
if (unit !== 'case' && unit !== 'slice') badOption(SCRIPT, `--unit is case or slice, got ${JSON.stringify(values.unit)}`);
// 'inf': clipping and normalisation only, no noise.
const epsilons = values.epsilons!.split(',').map((e) => (e === 'inf' ? Infinity : Number(e)));
const featureClips = values['feature-clip']!.split(',').map(Number);
const delta = Number(values.delta);
const { raw } = await readJsonFile(values.config!);
const cfg = parseSfdaBenchmarkConfig(raw);
const seeds = values.seeds ? values.seeds.split(',').map(Number) : cfg.seeds;
const engine = await initEngine();
console.log(`backend ${engine.backend}; unit ${unit}; epsilons ${epsilons.join(', ')}; seeds ${seeds.join(', ')}`);

/** `epsilon` Infinity: the same clipped, normalised package without noise (what the bounds alone cost). */
function dpPackage(unet: UNet, sources: Parameters<typeof computeSourceStats>[1][], epsilon: number, seed: number, featureClip: number): { stats: SourceStats; z: number; clippedUnits: number; units: number } {
  const px = sources[0].height * sources[0].width;
  const unitPixels = unit === 'slice' ? px : px * cfg.data.slicesPerCase;
  const req: StatisticsDpRequest = { unit, maxUnits: Number(values['max-units']), featureClip, activationClip: Number(values['activation-clip']), unitPixels, delta };
  const parts = sources.map((s) => dpSourceStatsVectors(unet, s, req, 0.97));
  const sums: Record<string, Float32Array> = {};
  for (const p of parts) for (const [n, v] of Object.entries(p.values)) sums[n] = sums[n] ? sums[n].map((x, i) => x + v[i]) : Float32Array.from(v);
  const z = Number.isFinite(epsilon) ? statisticsNoiseMultiplier({ targetEpsilon: epsilon, delta }, 2) : 0;
  const bound = sourceStatsUnitBound(unet.bnLayers.length);
  const scale = statisticsScale(bound, req.maxUnits);
  if (z > 0) addCentralStatisticsNoise(sums, isNoisedStatistic, z * bound * scale, seededNoiseSource(`bench-dp-stats/${seed}/${epsilon}`));
  const real = unscaleSourceStatsSums(sums, { scale, unitPixels, clips: req });
  const stats = postProcessDpSourceStats(sourceStatsFromVectors(real, { numClasses: unet.config.numClasses, latentDim: unet.config.baseChannels, confidence: 0.97, numSites: sources.length, scale: 1 }));
  return { stats, z, clippedUnits: parts.reduce((a, p) => a + p.clippedUnits, 0), units: parts.reduce((a, p) => a + p.units, 0) };
}

function magnitudes(unet: UNet, s: Parameters<typeof computeSourceStats>[1]): void {
  const st = computeSourceStats(unet, s);
  const bn = Object.entries(st.bn).map(([l, m]) => `${l}: max |mean| ${Math.max(...m.sum.map((x) => Math.abs(x / m.count))).toFixed(2)}, max rms ${Math.max(...m.sumSq.map((x) => Math.sqrt(x / m.count))).toFixed(2)}`);
  const lat = st.classes.map((c, k) => `class ${k}: rms latent norm ${Math.sqrt(c.labelled.sumOuter.filter((_, i) => i % (st.latentDim + 1) === 0).reduce((a, b) => a + b, 0) / Math.max(1, c.labelled.count)).toFixed(2)}`);
  console.log([...bn, ...lat].join('\n'));
}

const methods = values.methods!.split(',') as ('gmm-swd' | 'osuda')[];
for (const m of methods) if (m !== 'gmm-swd' && m !== 'osuda') throw new Error(`--methods: gmm-swd and/or osuda, got ${m}`);
const rows: { seed: number; stats: string; method: string; dice: number }[] = [];
for (const seed of seeds) {
  const d = cfg.data;
  const sources = await Promise.all(d.sourceSites.map((s, i) => benchmarkSiteData(cfg.data, seed * 100 + i, s.shift, s.numCases, `src${i}`)));
  const targetAdapt = await benchmarkSiteData(cfg.data, seed * 100 + 50, d.target.shift, d.target.adaptCases, 'tgt-adapt');
  const targetTest = await benchmarkSiteData(cfg.data, seed * 100 + 51, d.target.shift, d.target.testCases, 'tgt-test');
  const unet = createUNet({ inChannels: 1, numClasses: d.numClasses, baseChannels: cfg.model.baseChannels, depth: cfg.model.depth }, seed);
  await trainFederatedSource(unet, sources, { ...cfg.federated, seed });
  const federated = unet.getWeights();
  if (values.magnitudes) magnitudes(unet, sources[0]);
  const score = (): number => evaluateSegmentation(unet, toUnlabeled(targetTest), targetTest.labels, targetTest.sliceThickness).summary.mean.dice.mean;
  const record = (stats: string, method: string, dice: number): void => {
    rows.push({ seed, stats, method, dice });
    console.log(JSON.stringify({ seed, stats, method, dice: Number(dice.toFixed(4)) }));
  };
  record('-', 'source-only', score());
  const opts = (m: string): AdaptOptions => ({ ...cfg.adapt.common, ...(cfg.adapt.methods[m as 'osuda'] ?? {}), batchSize: cfg.adapt.batchSize, seed }) as AdaptOptions;
  unet.setWeights(federated);
  adapt('adabn', unet, toUnlabeled(targetAdapt), null, opts('adabn'));
  record('-', 'adabn', score());
  unet.setWeights(federated);
  const packages: { name: string; stats: SourceStats }[] = [{ name: 'clear', stats: poolSourceStats(sources.map((s) => computeSourceStats(unet, s))) }];
  for (const b of featureClips) {
    for (const eps of epsilons) {
      unet.setWeights(federated);
      const p = dpPackage(unet, sources, eps, seed, b);
      console.log(`seed ${seed}: B ${b} eps ${eps}: z ${p.z.toFixed(3)}, ${p.units} ${unit}s, ${p.clippedUnits} clipped`);
      packages.push({ name: `${featureClips.length > 1 ? `B${b} ` : ''}dp eps ${eps}`, stats: p.stats });
    }
  }
  for (const pkg of packages) {
    for (const m of methods) {
      unet.setWeights(federated);
      try {
        adapt(m, unet, toUnlabeled(targetAdapt), pkg.stats, opts(m));
        record(pkg.name, m, score());
      } catch (e) {
        console.log(`seed ${seed}: ${pkg.name} ${m} failed: ${(e as Error).message}`);
        record(pkg.name, m, NaN);
      }
    }
  }
  unet.dispose();
}
const keys = [...new Set(rows.map((r) => `${r.stats}|${r.method}`))];
console.log('\nstats        method        Dice mean ± std over seeds ' + seeds.join(','));
for (const k of keys) {
  const v = rows.filter((r) => `${r.stats}|${r.method}` === k).map((r) => r.dice).filter(Number.isFinite);
  const mean = v.reduce((a, b) => a + b, 0) / Math.max(1, v.length);
  const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / Math.max(1, v.length));
  const [stats, method] = k.split('|');
  console.log(`${stats.padEnd(12)} ${method.padEnd(13)} ${mean.toFixed(3)} ± ${std.toFixed(3)} (n=${v.length})`);
}
