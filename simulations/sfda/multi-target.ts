/**
 * Federated source-free adaptation across several new hospitals (`kind: sfda-multi-target`,
 * `fedsfda simulate --config simulations/scenarios/sfda-multi-target.json`). K unlabelled target sites, each on its
 * own scanner, adapt the same federated source model together (site-agent/adapt/joint-target-site.ts). Every round:
 *   1. each site computes its statistics (prototype sums, kept class counts); a SecAgg+ round (protocol/secagg, the
 *      coordinator's own server workflow and the sites' own sessions, with signed keys, pairwise and self masks and
 *      Shamir-shared seeds) sums them, and every site denoises its pseudo-labels against the pooled prototypes;
 *   2. each site trains one local mean-teacher epoch;
 *   3. the students' non-BN weights are summed by a second SecAgg+ round (fit contributions weighted by target slices,
 *      exactly the coordinator's secure fit: protocol/secagg/fit-contribution.ts) and turned into the next global
 *      weights by the coordinator's FedBN strategy.
 * The coordinator learns the sums only. The same sites adapting alone (same epochs, their own prototypes and class
 * counts, no weight exchange) are the comparison, per site. What is in-process here: the transport (the messages pass
 * through `runSecAggRound`'s in-memory driver instead of sockets); everything a message carries is the product's.
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import nacl from 'tweetnacl';
import { z } from 'zod';
import { createStrategy, type FitResult } from '../../coordinator/strategies/index.ts';
import {
  fitAggregateFromSum,
  fitContribution,
  fitContributionLayout,
  makeSimulatedSites,
  maxSafeScaleBits,
  packVectors,
  runSecAggRound,
  unpackVectors,
  type SecAggReply,
} from '../../protocol/secagg/index.ts';
import { applyCurve, computeSourceStats, evaluateSegmentation, jointStatisticsFromVectors, JointTargetSite, poolSourceStats, toUnlabeled, type JointSiteOptions } from '../../site-agent/adapt/index.ts';
import { createUNet, type UNet } from '../../site-agent/model/index.ts';
import type { WeightSet } from '../../protocol/index.ts';
import { ScannerShiftOrPresetSchema } from '../phantoms/index.ts';
import { benchmarkSiteData } from './benchmark-site.ts';
import { trainFederatedSource } from './federated-source.ts';

export const multiTargetSchema = z
  .object({
    kind: z.literal('sfda-multi-target'),
    name: z.string().min(1),
    seeds: z.array(z.number().int()).min(1).max(20),
    data: z
      .object({
        anatomy: z.enum(['phantom', 'mricron']),
        size: z.number().int().min(8).max(256),
        numClasses: z.number().int().min(2).max(8),
        slicesPerCase: z.number().int().min(1).max(128),
        sourceSites: z.array(z.object({ shift: ScannerShiftOrPresetSchema, numCases: z.number().int().min(1).max(200) }).strict()).min(1),
        targets: z
          .array(z.object({ id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/), shift: ScannerShiftOrPresetSchema, adaptCases: z.number().int().min(1), testCases: z.number().int().min(1) }).strict())
          .min(3)
          .max(16),
      })
      .strict(),
    model: z.object({ baseChannels: z.number().int().min(2).max(64), depth: z.number().int().min(1).max(4) }).strict(),
    federated: z.object({ rounds: z.number().int().min(1), localEpochs: z.number().int().min(1), batchSize: z.number().int().min(1), lr: z.number().positive() }).strict(),
    adapt: z
      .object({
        /** Rounds = local mean-teacher epochs. */
        rounds: z.number().int().min(1).max(100),
        batchSize: z.number().int().min(1).max(64),
        options: z.record(z.string(), z.unknown()).default({}),
      })
      .strict(),
    secureAggregation: z
      .object({
        /** Public bound on target slices per site (weights are scaled by n_k / maxExamples). */
        maxExamples: z.number().int().min(1),
        /** Public bound on target pixels per site (statistics are scaled by its inverse). */
        maxPixels: z.number().int().min(1),
        clip: z.number().positive(),
        threshold: z.number().int().min(2).optional(),
      })
      .strict(),
  })
  .strict();

export type MultiTargetConfig = z.infer<typeof multiTargetSchema>;

export interface SiteOutcome {
  readonly id: string;
  readonly alone: number[];
  readonly federated: number[];
  readonly sourceOnly: number[];
}

export interface MultiTargetResult {
  readonly name: string;
  readonly seeds: number[];
  readonly sites: SiteOutcome[];
  readonly secureRounds: number;
  readonly wallMs: number;
}

export interface MultiTargetHooks {
  readonly onProgress?: (m: string) => void;
  /** Sees every message the coordinator receives in the secure rounds (tests of what it learns). */
  readonly onCoordinatorReceive?: (reply: SecAggReply, purpose: 'statistics' | 'fit') => void;
  /** The plain vectors the sites fed in (tests compare the secure sums against them). */
  readonly onSiteInputs?: (purpose: 'statistics' | 'fit', round: number, inputs: Float32Array[], sum: Float32Array) => void;
}

interface Sites {
  readonly nets: UNet[];
  readonly joint: JointTargetSite[];
}

async function secureSum(
  ids: readonly string[],
  inputs: Float32Array[],
  clip: number,
  threshold: number | undefined,
  hooks: MultiTargetHooks,
  purpose: 'statistics' | 'fit',
  identities: nacl.SignKeyPair[],
): Promise<Float32Array> {
  const quant = { clip, scaleBits: maxSafeScaleBits(clip, ids.length) };
  const sites = makeSimulatedSites(ids.length, (i) => inputs[i]).map((s, i) => ({ ...s, siteId: ids[i], identity: identities[i] }));
  const r = await runSecAggRound(sites, {
    vectorLength: inputs[0].length,
    quant,
    ...(threshold !== undefined ? { threshold } : {}),
    onCoordinatorReceive: (m) => hooks.onCoordinatorReceive?.(m, purpose),
  });
  if (r.included.length !== ids.length) throw new Error(`secure ${purpose} sum left out ${ids.length - r.included.length} site(s)`);
  return r.sum;
}

/** One round of the joint mode: statistics sum, local epochs, weight sum + FedBN. */
async function jointRound(cfg: MultiTargetConfig, s: Sites, round: number, global: WeightSet, identities: nacl.SignKeyPair[], hooks: MultiTargetHooks, totalSteps: number): Promise<WeightSet> {
  const ids = cfg.data.targets.map((t) => t.id);
  const sa = cfg.secureAggregation;
  const scale = 1 / sa.maxPixels;
  const k = cfg.data.numClasses;
  const dim = cfg.model.baseChannels;
  const named = s.joint.map((j) => j.statistics(scale));
  const packed = named.map((n) => packVectors(n));
  const statSum = await secureSum(ids, packed.map((p) => p.vector), sa.clip, sa.threshold, hooks, 'statistics', identities);
  hooks.onSiteInputs?.('statistics', round, packed.map((p) => p.vector), statSum);
  const pooled = jointStatisticsFromVectors(unpackVectors(statSum, packed[0].layout), k, dim, scale);
  for (const j of s.joint) j.train(pooled, totalSteps);
  // The students' weights through the coordinator's secure fit path and its FedBN strategy.
  const strategy = createStrategy({ name: 'fedbn' });
  const spec = { tensors: global.filter((t) => strategy.aggregatesTensor?.(t.name) ?? true).map((t) => ({ name: t.name, length: t.data.length })), metrics: [], maxExamples: sa.maxExamples };
  const contributions = s.joint.map((j) => fitContribution(spec, new Map(j.unet.getWeights().map((t) => [t.name, t.data])), j.numExamples, {}));
  const fitSum = await secureSum(ids, contributions, sa.clip, sa.threshold, hooks, 'fit', identities);
  hooks.onSiteInputs?.('fit', round, contributions, fitSum);
  const layoutLen = fitContributionLayout(spec).totalLength;
  if (fitSum.length !== layoutLen) throw new Error('fit sum has the wrong length');
  const agg = fitAggregateFromSum(spec, fitSum);
  const virtual: FitResult = {
    siteId: 'secure-aggregate',
    weights: global.map((t) => ({ ...t, data: agg.mean.get(t.name) ?? t.data })),
    numExamples: agg.totalExamples,
    metrics: {},
    aggregateOf: ids,
  };
  const next = strategy.aggregateFit(round, [virtual], [], global);
  if (next === null) throw new Error(`round ${round}: the strategy kept the model`);
  for (const j of s.joint) j.receive(next.weights, (name) => !(strategy.aggregatesTensor?.(name) ?? true));
  return next.weights;
}

async function runSeed(cfg: MultiTargetConfig, seed: number, hooks: MultiTargetHooks): Promise<{ id: string; sourceOnly: number; alone: number; federated: number }[]> {
  const d = cfg.data;
  const log = hooks.onProgress ?? ((): void => undefined);
  const modelCfg = { inChannels: 1, numClasses: d.numClasses, baseChannels: cfg.model.baseChannels, depth: cfg.model.depth };
  const sources = await Promise.all(d.sourceSites.map((s, i) => benchmarkSiteData(d, seed * 100 + i, s.shift, s.numCases, `src${i}`)));
  const source = createUNet(modelCfg, seed);
  await trainFederatedSource(source, sources, { ...cfg.federated, seed });
  const sourceWeights = source.getWeights();
  const stats = poolSourceStats(sources.map((s) => computeSourceStats(source, s)));
  const targets = await Promise.all(d.targets.map((t, i) => benchmarkSiteData(d, seed * 100 + 50 + 10 * i, t.shift, t.adaptCases, `${t.id}-adapt`)));
  const tests = await Promise.all(d.targets.map((t, i) => benchmarkSiteData(d, seed * 100 + 51 + 10 * i, t.shift, t.testCases, `${t.id}-test`)));
  const score = (u: UNet, i: number, curve: ReturnType<JointTargetSite['finish']>): number => {
    const images = toUnlabeled(tests[i]);
    return evaluateSegmentation(u, curve ? applyCurve(curve, images) : images, tests[i].labels, tests[i].sliceThickness).summary.mean.dice.mean;
  };
  const sourceOnly = d.targets.map((_, i) => score(source, i, null));
  source.dispose();
  const out: Record<'alone' | 'federated', number[]> = { alone: [], federated: [] };
  const identities = d.targets.map(() => nacl.sign.keyPair());
  for (const mode of ['alone', 'federated'] as const) {
    const nets = d.targets.map(() => createUNet(modelCfg, seed));
    try {
      for (const n of nets) n.setWeights(sourceWeights);
      const opts = (i: number): JointSiteOptions => ({ ...(cfg.adapt.options as JointSiteOptions), batchSize: cfg.adapt.batchSize, seed: seed * 31 + i, share: mode === 'federated' ? 'pooled' : 'local' });
      const joint = nets.map((n, i) => new JointTargetSite(n, toUnlabeled(targets[i]), stats, opts(i)));
      const totalSteps = cfg.adapt.rounds * Math.ceil(targets[0].n / cfg.adapt.batchSize);
      let global = sourceWeights;
      for (let r = 1; r <= cfg.adapt.rounds; r++) {
        if (mode === 'federated') global = await jointRound(cfg, { nets, joint }, r, global, identities, hooks, totalSteps);
        else for (const j of joint) {
          j.statistics(1 / cfg.secureAggregation.maxPixels);
          j.train(null, totalSteps);
        }
        log(`seed ${seed} ${mode}: round ${r}/${cfg.adapt.rounds}, kept pseudo-label fraction ${joint.map((j) => j.keptFraction.toFixed(2)).join(' / ')}`);
      }
      out[mode] = joint.map((j, i) => score(j.unet, i, j.finish()));
    } finally {
      for (const n of nets) n.dispose();
    }
    log(`seed ${seed} ${mode}: Dice per site ${out[mode].map((x) => x.toFixed(3)).join(' / ')}`);
  }
  return d.targets.map((t, i) => ({ id: t.id, sourceOnly: sourceOnly[i], alone: out.alone[i], federated: out.federated[i] }));
}

/** Runs every seed. The caller selects the tfjs backend first (initEngine()). */
export async function runMultiTarget(raw: MultiTargetConfig, hooks: MultiTargetHooks = {}): Promise<MultiTargetResult> {
  const cfg = multiTargetSchema.parse(raw);
  const t0 = performance.now();
  const sites: SiteOutcome[] = cfg.data.targets.map((t) => ({ id: t.id, alone: [], federated: [], sourceOnly: [] }));
  for (const seed of cfg.seeds) {
    const r = await runSeed(cfg, seed, hooks);
    r.forEach((x, i) => {
      sites[i].alone.push(x.alone);
      sites[i].federated.push(x.federated);
      sites[i].sourceOnly.push(x.sourceOnly);
    });
  }
  return { name: cfg.name, seeds: cfg.seeds, sites, secureRounds: 2 * cfg.adapt.rounds * cfg.seeds.length, wallMs: performance.now() - t0 };
}

export function formatMultiTarget(r: MultiTargetResult): string {
  const m = (v: number[]): string => {
    const mean = v.reduce((a, b) => a + b, 0) / v.length;
    const std = Math.sqrt(v.reduce((a, b) => a + (b - mean) ** 2, 0) / v.length);
    return `${mean.toFixed(3)} ± ${std.toFixed(3)}`;
  };
  const lines = [`${'site'.padEnd(12)}${'source-only'.padEnd(18)}${'adapting alone'.padEnd(18)}federated (secure sums)`];
  for (const s of r.sites) lines.push(`${s.id.padEnd(12)}${m(s.sourceOnly).padEnd(18)}${m(s.alone).padEnd(18)}${m(s.federated)}`);
  const meanOver = (key: 'alone' | 'federated' | 'sourceOnly'): number[] => r.seeds.map((_, k) => r.sites.reduce((a, s) => a + s[key][k], 0) / r.sites.length);
  lines.push(`${'mean'.padEnd(12)}${m(meanOver('sourceOnly')).padEnd(18)}${m(meanOver('alone')).padEnd(18)}${m(meanOver('federated'))}`);
  lines.push(`seeds ${r.seeds.join(', ')}; ${r.secureRounds} secure rounds; wall time ${(r.wallMs / 1000).toFixed(0)} s`);
  return lines.join('\n');
}

export class MultiTargetError extends Error {
  readonly code = 'BAD_MULTI_TARGET_CONFIG' as const;
  constructor(message: string) {
    super(message);
    this.name = 'MultiTargetError';
  }
}

export function parseMultiTargetConfig(raw: unknown, where = 'multi-target config'): MultiTargetConfig {
  const r = multiTargetSchema.safeParse(raw);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new MultiTargetError(`${where}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  return r.data;
}

/** Loads the scenario, runs it, prints the table, writes DIR/summary.json when `outDir` is given. */
export async function runMultiTargetFile(file: string, outDir?: string, log: (m: string) => void = console.log): Promise<MultiTargetResult> {
  const cfg = parseMultiTargetConfig(JSON.parse(await readFile(file, 'utf8')), file);
  const result = await runMultiTarget(cfg, { onProgress: log });
  log(formatMultiTarget(result));
  if (outDir !== undefined) {
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'summary.json'), JSON.stringify(result, null, 2));
  }
  return result;
}
