/**
 * The source-free adaptation benchmark: federated training on labelled source sites (in-process rounds aggregated by the coordinator's FedAvg strategy), pooled
 * source statistics, then each method adapts the federated model on an unlabelled target site with a strong scanner
 * shift; every method is scored on separate labelled target test cases (3D per volume: Dice, ASSD in mm), over
 * several seeds. `source-only` is the unadapted federated model; `target-supervised` the same network trained with
 * the target's labels (the upper bound).
 *   npx tsx simulations/sfda/run-benchmark.ts --config simulations/scenarios/sfda-benchmark.json [--out DIR]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { readJsonFile } from '../../protocol/common/index.ts';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { adapt, applyCurve, computeSourceStats, evaluateSegmentation, poolSourceStats, toUnlabeled, type AdaptMethod, type AdaptOptions, type IntensityCurve } from '../../site-agent/adapt/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { trainLocal } from '../../site-agent/training/index.ts';
import { benchmarkSiteData } from './benchmark-site.ts';
import { parseSfdaBenchmarkConfig, type SfdaBenchmarkConfig } from './benchmark-config.ts';
import { trainFederatedSource } from './federated-source.ts';

export const BENCHMARK_METHODS = ['source-only', 'adabn', 'tent', 'osuda', 'gmm-swd', 'target-supervised'] as const;
export type BenchmarkMethod = (typeof BENCHMARK_METHODS)[number];

export interface MethodRun {
  readonly seed: number;
  /** Mean over test volumes of the per-volume mean foreground Dice. */
  readonly dice: number;
  /** Mean over test volumes of the per-volume mean foreground ASSD (mm), finite values only. */
  readonly assd: number;
  /** Infinite distance entries (a class missed entirely in a volume), never averaged in. */
  readonly infiniteCount: number;
  readonly wallMs: number;
  readonly notes: string[];
}

export interface MethodSummary {
  readonly dice: { mean: number; std: number };
  readonly assd: { mean: number; std: number };
  readonly infiniteCount: number;
  readonly runs: MethodRun[];
}

export interface SfdaBenchmarkResult {
  readonly name: string;
  readonly seeds: number[];
  readonly methods: Record<BenchmarkMethod, MethodSummary>;
  /** (best source-free Dice - source-only) / (target-supervised - source-only). */
  readonly gapClosed: { method: BenchmarkMethod; fraction: number };
  readonly wallMs: number;
}

export interface BenchmarkHooks {
  readonly onProgress?: (message: string) => void;
}

function meanStd(v: number[]): { mean: number; std: number } {
  const f = v.filter(Number.isFinite);
  if (f.length === 0) return { mean: NaN, std: NaN };
  const mean = f.reduce((a, b) => a + b, 0) / f.length;
  return { mean, std: Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / f.length) };
}

/** One benchmark site's slices: phantoms, or mricron anatomy read back through the dataset loader (also tune-adapt.ts). */
export function benchmarkSite(cfg: SfdaBenchmarkConfig, seed: number, shift: SfdaBenchmarkConfig['data']['target']['shift'], numCases: number, tag: string): Promise<SliceDataset> {
  return benchmarkSiteData(cfg.data, seed, shift, numCases, tag);
}

async function runSeed(cfg: SfdaBenchmarkConfig, seed: number, log: (m: string) => void): Promise<Record<BenchmarkMethod, MethodRun>> {
  const d = cfg.data;
  const sources = await Promise.all(d.sourceSites.map((s, i) => benchmarkSite(cfg, seed * 100 + i, s.shift, s.numCases, `src${i}`)));
  const targetAdapt = await benchmarkSite(cfg, seed * 100 + 50, d.target.shift, d.target.adaptCases, 'tgt-adapt');
  const targetTest = await benchmarkSite(cfg, seed * 100 + 51, d.target.shift, d.target.testCases, 'tgt-test');
  const modelCfg = { inChannels: 1, numClasses: d.numClasses, baseChannels: cfg.model.baseChannels, depth: cfg.model.depth };
  const testImages = toUnlabeled(targetTest);
  // A fitted input curve (report.inputCurve) is part of the adapted model: the test images go through it too.
  const score = (u: ReturnType<typeof createUNet>, curve?: IntensityCurve): { dice: number; assd: number; infiniteCount: number } => {
    const ev = evaluateSegmentation(u, curve ? applyCurve(curve, testImages) : testImages, targetTest.labels, targetTest.sliceThickness);
    return { dice: ev.summary.mean.dice.mean, assd: ev.summary.mean.assd.mean, infiniteCount: ev.summary.infiniteCount };
  };
  const out = {} as Record<BenchmarkMethod, MethodRun>;
  const unet = createUNet(modelCfg, seed);
  try {
    let t0 = performance.now();
    await trainFederatedSource(unet, sources, {
      ...cfg.federated,
      seed,
      onRound: (r, loss) => log(`seed ${seed}: FedAvg round ${r}/${cfg.federated.rounds} mean local loss ${loss.toFixed(4)}`),
    });
    const federated = unet.getWeights();
    const stats = poolSourceStats(sources.map((s) => computeSourceStats(unet, s)));
    out['source-only'] = { seed, ...score(unet), wallMs: performance.now() - t0, notes: ['wallMs includes federated training'] };
    log(`seed ${seed}: source-only Dice ${out['source-only'].dice.toFixed(3)}`);
    for (const method of ['adabn', 'tent', 'osuda', 'gmm-swd'] as const satisfies readonly AdaptMethod[]) {
      unet.setWeights(federated);
      t0 = performance.now();
      const opts = { ...cfg.adapt.common, ...(cfg.adapt.methods[method] ?? {}), batchSize: cfg.adapt.batchSize, seed } as AdaptOptions;
      const report = adapt(method, unet, toUnlabeled(targetAdapt), stats, opts);
      out[method] = { seed, ...score(unet, report.inputCurve), wallMs: performance.now() - t0, notes: report.notes };
      log(`seed ${seed}: ${method} Dice ${out[method].dice.toFixed(3)} (${report.steps} steps, ${(out[method].wallMs / 1000).toFixed(1)} s)`);
    }
  } finally {
    unet.dispose();
  }
  const sup = createUNet(modelCfg, seed + 7919);
  try {
    const t0 = performance.now();
    const n = cfg.targetSupervised.numCases;
    const supData = n === undefined ? targetAdapt : await benchmarkSite(cfg, seed * 100 + 52, d.target.shift, n, 'tgt-sup');
    await trainLocal(sup, supData, { epochs: cfg.targetSupervised.epochs, batchSize: cfg.federated.batchSize, optimizer: 'adam', lr: cfg.targetSupervised.lr, loss: 'ce+dice', seed });
    out['target-supervised'] = { seed, ...score(sup), wallMs: performance.now() - t0, notes: [`trained on ${supData.n} labelled target slices`] };
    log(`seed ${seed}: target-supervised Dice ${out['target-supervised'].dice.toFixed(3)}`);
  } finally {
    sup.dispose();
  }
  return out;
}

/**
 * Runs the whole benchmark. The caller selects the tfjs backend first (initEngine()).
 * @example
 * const r = await runSfdaBenchmark(parseSfdaBenchmarkConfig(raw), { onProgress: console.log });
 * r.methods.osuda.dice.mean;
 */
export async function runSfdaBenchmark(rawConfig: SfdaBenchmarkConfig, hooks: BenchmarkHooks = {}): Promise<SfdaBenchmarkResult> {
  const cfg = parseSfdaBenchmarkConfig(rawConfig);
  const log = hooks.onProgress ?? ((): void => undefined);
  const t0 = performance.now();
  const runs: Record<BenchmarkMethod, MethodRun>[] = [];
  for (const seed of cfg.seeds) runs.push(await runSeed(cfg, seed, log));
  const methods = {} as Record<BenchmarkMethod, MethodSummary>;
  for (const m of BENCHMARK_METHODS) {
    const rs = runs.map((r) => r[m]);
    methods[m] = {
      dice: meanStd(rs.map((r) => r.dice)),
      assd: meanStd(rs.map((r) => r.assd)),
      infiniteCount: rs.reduce((a, r) => a + r.infiniteCount, 0),
      runs: rs,
    };
  }
  const free = ['adabn', 'tent', 'osuda', 'gmm-swd'] as const;
  const best = free.reduce((a, b) => (methods[b].dice.mean > methods[a].dice.mean ? b : a));
  const so = methods['source-only'].dice.mean;
  const fraction = (methods[best].dice.mean - so) / (methods['target-supervised'].dice.mean - so);
  return { name: cfg.name, seeds: cfg.seeds, methods, gapClosed: { method: best, fraction }, wallMs: performance.now() - t0 };
}

/** The methods table as fixed-width text. */
export function formatMethodsTable(r: SfdaBenchmarkResult): string {
  const lines = [`${'method'.padEnd(18)} ${'Dice mean ± std'.padEnd(18)} ${'ASSD mm mean ± std'.padEnd(20)} inf`];
  for (const m of BENCHMARK_METHODS) {
    const s = r.methods[m];
    lines.push(
      `${m.padEnd(18)} ${`${s.dice.mean.toFixed(3)} ± ${s.dice.std.toFixed(3)}`.padEnd(18)} ${`${s.assd.mean.toFixed(2)} ± ${s.assd.std.toFixed(2)}`.padEnd(20)} ${s.infiniteCount}`,
    );
  }
  lines.push(`best source-free: ${r.gapClosed.method}, closes ${(100 * r.gapClosed.fraction).toFixed(1)}% of the source-only -> target-supervised Dice gap`);
  lines.push(`seeds ${r.seeds.join(', ')}; wall time ${(r.wallMs / 1000).toFixed(0)} s`);
  return lines.join('\n');
}

/** Loads the scenario, runs it, prints the table, writes DIR/summary.json when `outDir` is given. */
export async function runSfdaBenchmarkFile(file: string, outDir?: string, log: (m: string) => void = console.log): Promise<SfdaBenchmarkResult> {
  const { raw, text } = await readJsonFile(file);
  const cfg = parseSfdaBenchmarkConfig(raw, file, text);
  const result = await runSfdaBenchmark(cfg, { onProgress: log });
  log(formatMethodsTable(result));
  if (outDir !== undefined) {
    await mkdir(outDir, { recursive: true });
    await writeFile(join(outDir, 'summary.json'), JSON.stringify(result, null, 2));
  }
  return result;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k: string): string | undefined => {
    const i = process.argv.indexOf(k);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const { initEngine } = await import('../../site-agent/engine/index.ts');
  const info = await initEngine();
  console.log(`backend: ${info.backend} (tfjs '${info.tfBackend}', ${info.threads} threads)`);
  await runSfdaBenchmarkFile(arg('--config') ?? 'simulations/scenarios/sfda-benchmark.json', arg('--out'));
}
