/**
 * Runs the SFDA shift suite (suite-config.ts). Per dataset and seed: the source sites are trained once by federated
 * rounds (the coordinator's FedAvg, federated-source.ts) and once centrally on their pooled slices; the pooled source
 * statistics package is computed; then, for every target family, every row adapts a fresh copy of the federated model
 * on the family's unlabelled adaptation cases and is scored on separate labelled test cases (3D per volume: mean
 * foreground Dice, ASSD in mm). Target labels enter only the scorer, the few-label rows (their labelled subset) and the
 * supervised reference.
 */
import {
  adapt,
  adaptWithLabels,
  applyCurve,
  computeSourceStats,
  evaluateSegmentation,
  formatTypicality,
  fitInputAdapter,
  poolSourceStats,
  requestedAdapter,
  toUnlabeled,
  type AdaptOptions,
  labelFreeScores,
  type InputAdapterResult,
  type IntensityCurve,
  type LabelFreeScores,
  type SourceStats,
  type UnlabeledSlices,
} from '../../site-agent/adapt/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { createUNet, type UNet } from '../../site-agent/model/index.ts';
import { trainLocal } from '../../site-agent/training/index.ts';
import type { WeightSet } from '../../protocol/index.ts';
import { benchmarkSiteData, concatSites, firstCases } from './benchmark-site.ts';
import { roundData, trainFederatedSource } from './federated-source.ts';
import { SfdaSuiteError, targetSupervisedOf, type SfdaSuiteConfig, type SuiteDataset, type SuiteFamily } from './suite-config.ts';

export interface CellRun {
  readonly seed: number;
  readonly dice: number;
  readonly assd: number;
  readonly infiniteCount: number;
  readonly wallMs: number;
  readonly notes: string[];
  /** Label-free scores of the final model on the adaptation images (diagnostics for the do-no-harm safeguard). */
  readonly labelFree?: LabelFreeScores;
}

export interface SourceScore {
  readonly seed: number;
  /** Mean over the source scanners of the held-out in-domain Dice. */
  readonly federated: number;
  readonly centralized: number;
}

export interface DatasetResult {
  readonly name: string;
  readonly families: { name: string; heldOut: boolean }[];
  /** Row names in table order. */
  readonly rows: string[];
  /** cells[row][family] = one run per seed. */
  readonly cells: Record<string, Record<string, CellRun[]>>;
  readonly source: SourceScore[];
}

/** The reference rows next to the methods: the few-label rows, the target-supervised one, the centralized source. */
export const SUITE_REFERENCES = ['few-label', 'target-supervised', 'centralized-source'] as const;
export type SuiteReference = (typeof SUITE_REFERENCES)[number];

export interface SuiteFilters {
  readonly datasets?: readonly string[];
  readonly families?: readonly string[];
  /** Method rows to run (source-only always runs); `[]` runs none (references only). */
  readonly rows?: readonly string[];
  /** References to run (default all; `[]` skips them, for tuning methods). */
  readonly references?: readonly SuiteReference[];
  /** Loads / stores trained source models (tuning across invocations); the suite itself trains once per run. */
  readonly sourceCache?: { load(key: string): Promise<WeightSet | null>; store(key: string, w: WeightSet): Promise<void> };
}

export const SOURCE_ONLY = 'source-only';
export const TARGET_SUPERVISED = 'target-supervised';
export const CENTRALIZED_SOURCE = 'centralized-source';
export const fewLabelRow = (k: number): string => `few-label-${k}`;

interface ScoredSet {
  readonly ds: SliceDataset;
  score(u: UNet, curve?: IntensityCurve): { dice: number; assd: number; infiniteCount: number };
}

function scoredSet(ds: SliceDataset): ScoredSet {
  const images = toUnlabeled(ds);
  return {
    ds,
    score(u, curve) {
      const ev = evaluateSegmentation(u, curve ? applyCurve(curve, images) : images, ds.labels, ds.sliceThickness);
      return { dice: ev.summary.mean.dice.mean, assd: ev.summary.mean.assd.mean, infiniteCount: ev.summary.infiniteCount };
    },
  };
}

interface SourceModels {
  readonly federated: WeightSet;
  readonly centralized: WeightSet | null;
  readonly stats: SourceStats;
  readonly score: SourceScore;
}

/** A federated training recipe (the `federated` block, with the dataset's `sourceAugment` folded in). */
export type FederatedRecipe = SfdaSuiteConfig['federated'];

/**
 * The source-model cache key of a federated recipe (`fed-${key}` / `central-${key}` in `SuiteFilters.sourceCache`): the
 * one home of that contract (oracle-curve.ts reads the suite's models through it).
 */
export function federatedCacheKey(cfg: SfdaSuiteConfig, fed: FederatedRecipe, d: SuiteDataset, seed: number): string {
  return JSON.stringify({ d: { ...d, families: undefined, sourceAugment: undefined, sourceAugmentSchedule: undefined, sourceTraining: undefined, model: undefined, targetSupervised: undefined }, model: datasetModel(cfg, d), fed: { ...fed, augmentSelection: undefined, augmentValidationCases: undefined }, seed });
}

/** The federated recipe a dataset's consortium trains as configured (its `sourceTraining`, `sourceAugment`, `sourceAugmentSchedule` folded in). */
export function configuredRecipe(cfg: SfdaSuiteConfig, d: SuiteDataset): FederatedRecipe {
  const base: FederatedRecipe = d.sourceTraining ? { ...cfg.federated, ...d.sourceTraining } : cfg.federated;
  const withAugment: FederatedRecipe = d.sourceAugment ? { ...base, augment: d.sourceAugment } : base;
  return d.sourceAugmentSchedule ? { ...withAugment, augmentSchedule: d.sourceAugmentSchedule } : withAugment;
}

async function trainFederatedCached(cfg: SfdaSuiteConfig, fed: FederatedRecipe, d: SuiteDataset, seed: number, unet: UNet, sources: readonly SliceDataset[], filters: SuiteFilters, log: (m: string) => void): Promise<string> {
  const key = federatedCacheKey(cfg, fed, d, seed);
  const cached = filters.sourceCache ? await filters.sourceCache.load(`fed-${key}`) : null;
  if (cached) unet.setWeights(cached);
  else {
    // `fed.augment` (when set) reaches the federation here; `sources` stay plain (the statistics are computed on them).
    const t0 = performance.now();
    await trainFederatedSource(unet, sources, { ...fed, seed, onRound: (r, l) => log(`${d.name} seed ${seed}: federated round ${r}/${fed.rounds} loss ${l.toFixed(4)}`) });
    log(`${d.name} seed ${seed}: federated source trained in ${((performance.now() - t0) / 1000).toFixed(1)} s${fed.augment ? ' (augmented)' : ''}`);
    await filters.sourceCache?.store(`fed-${key}`, unet.getWeights());
  }
  return key;
}

/** The dataset's U-Net: its own `model`, else the suite's (every model of the dataset uses it). */
export const datasetModel = (cfg: SfdaSuiteConfig, d: SuiteDataset): SfdaSuiteConfig['model'] => d.model ?? cfg.model;

/** Mean Dice of `u` over scored source sets. */
const meanSourceDice = (u: UNet, sets: readonly SliceDataset[]): number => sets.reduce((a, t) => a + scoredSet(t).score(u).dice, 0) / sets.length;

/**
 * The federated recipe the consortium keeps: with `augmentSelection: 'validation'` the augmented model only when
 * its Dice on held-out source validation cases is not lower than the plain model's (the source sites can measure
 * this before any target exists); otherwise the configured one. `unet` ends holding the kept model.
 */
async function chooseFederatedRecipe(cfg: SfdaSuiteConfig, d: SuiteDataset, seed: number, unet: UNet, sources: readonly SliceDataset[], filters: SuiteFilters, log: (m: string) => void): Promise<{ fed: FederatedRecipe; key: string }> {
  const fed = configuredRecipe(cfg, d);
  if (fed.augment === undefined || fed.augmentSelection !== 'validation') return { fed, key: await trainFederatedCached(cfg, fed, d, seed, unet, sources, filters, log) };
  const val = await Promise.all(d.sourceSites.map((s, i) => benchmarkSiteData(d, seed * 100 + 80 + i, s.shift, fed.augmentValidationCases ?? d.sourceTestCases, `src${i}-val`)));
  const plain: FederatedRecipe = { ...fed, augment: undefined, augmentSchedule: undefined };
  const plainKey = await trainFederatedCached(cfg, plain, d, seed, unet, sources, filters, log);
  const plainWeights = unet.getWeights();
  const plainDice = meanSourceDice(unet, val);
  const augKey = await trainFederatedCached(cfg, fed, d, seed, unet, sources, filters, log);
  const augDice = meanSourceDice(unet, val);
  const keep = augDice >= plainDice;
  log(`${d.name} seed ${seed}: source recipe ${keep ? 'augmented' : 'plain'} (source validation Dice augmented ${augDice.toFixed(3)} vs plain ${plainDice.toFixed(3)})`);
  if (keep) return { fed, key: augKey };
  unet.setWeights(plainWeights);
  return { fed: plain, key: plainKey };
}

async function trainSources(cfg: SfdaSuiteConfig, d: SuiteDataset, seed: number, unet: UNet, filters: SuiteFilters, log: (m: string) => void): Promise<SourceModels> {
  const sources = await Promise.all(d.sourceSites.map((s, i) => benchmarkSiteData(d, seed * 100 + i, s.shift, s.numCases, `src${i}`)));
  const tests = await Promise.all(d.sourceSites.map((s, i) => benchmarkSiteData(d, seed * 100 + 60 + i, s.shift, d.sourceTestCases, `src${i}-test`)));
  const { fed, key } = await chooseFederatedRecipe(cfg, d, seed, unet, sources, filters, log);
  const federated = unet.getWeights();
  // The source statistics describe the real source domain (the target-side adapter matches them): the plain slices,
  // never the augmented copies the models were trained on.
  const stats = poolSourceStats(sources.map((s) => computeSourceStats(unet, s)));
  const fedScore = meanSourceDice(unet, tests);
  let centralized: WeightSet | null = null;
  let centScore = NaN;
  if (runsReference(filters, 'centralized-source')) {
    const central = createUNet(unet.config, seed);
    try {
      const cachedC = filters.sourceCache ? await filters.sourceCache.load(`central-${key}`) : null;
      if (cachedC) central.setWeights(cachedC);
      else {
        const t0 = performance.now();
        await trainCentralized({ ...cfg, federated: fed }, central, concatSites(sources), seed);
        log(`${d.name} seed ${seed}: centralized source trained in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
        await filters.sourceCache?.store(`central-${key}`, central.getWeights());
      }
      centralized = central.getWeights();
      centScore = meanSourceDice(central, tests);
    } finally {
      central.dispose();
    }
  }
  log(`${d.name} seed ${seed}: in-domain source Dice federated ${fedScore.toFixed(3)}, centralized ${centScore.toFixed(3)}`);
  return { federated, centralized, stats, score: { seed, federated: fedScore, centralized: centScore } };
}

/**
 * The pooled reference: as many passes as the federation made unless `centralized.epochs` says otherwise. With
 * `federated.augment` it sees the same augmentation: a fresh augmented copy of the pooled slices every `localEpochs`
 * passes (a fresh Adam each time, as every federated round starts one), so federated vs centralized stays a comparison
 * of the training scheme alone. Without it, one run over the plain slices (as before, bit for bit).
 */
async function trainCentralized(cfg: SfdaSuiteConfig, central: UNet, pooled: SliceDataset, seed: number): Promise<void> {
  const epochs = cfg.centralized.epochs ?? cfg.federated.rounds * cfg.federated.localEpochs;
  const train = { batchSize: cfg.federated.batchSize, optimizer: 'adam' as const, lr: cfg.centralized.lr ?? cfg.federated.lr, loss: 'ce+dice' as const };
  const augment = cfg.federated.augment;
  if (augment === undefined) {
    await trainLocal(central, pooled, { ...train, epochs, seed });
    return;
  }
  const chunk = cfg.federated.localEpochs;
  for (let c = 0, done = 0; done < epochs; c++, done += chunk) {
    const data = roundData(pooled, augment, cfg.federated.augmentSchedule, c + 1, seed * 7919 + c * 31 + 104729);
    await trainLocal(central, data, { ...train, epochs: Math.min(chunk, epochs - done), seed: seed * 1000 + c * 17 });
  }
}

/** A row's work; `labelFree`: the final model's label-free scores when the row already has them (the safeguard's). */
type RowRunner = () => Promise<{ curve?: IntensityCurve; notes: string[]; labelFree?: LabelFreeScores }>;

async function runCell(unet: UNet, test: ScoredSet, seed: number, start: WeightSet, run: RowRunner, target?: { images: UnlabeledSlices; stats: SourceStats }): Promise<CellRun> {
  unet.setWeights(start);
  const t0 = performance.now();
  const r = await run();
  const wallMs = performance.now() - t0;
  const labelFree = target ? (r.labelFree ?? labelFreeScores(unet, target.images, target.stats, r.curve, seed)) : undefined;
  return { seed, ...test.score(unet, r.curve), wallMs, notes: r.notes, ...(labelFree ? { labelFree } : {}) };
}

async function runFamily(cfg: SfdaSuiteConfig, d: SuiteDataset, f: SuiteFamily, seed: number, unet: UNet, src: SourceModels, filters: SuiteFilters, put: (row: string, run: CellRun) => void, log: (m: string) => void): Promise<void> {
  const target = toUnlabeled(await benchmarkSiteData(d, seed * 100 + 50, f.shift, d.adaptCases, 'tgt-adapt'));
  const test = scoredSet(await benchmarkSiteData(d, seed * 100 + 51, f.shift, d.testCases, 'tgt-test'));
  const base = { ...cfg.adapt.common, batchSize: cfg.adapt.batchSize, seed };
  const record = (row: string, run: CellRun): void => {
    put(row, run);
    const lf = run.labelFree ? ` [label-free: entropy ${run.labelFree.entropy.toFixed(4)}, prior KL ${run.labelFree.priorKl.toFixed(4)}, consistency ${run.labelFree.consistency.toFixed(4)}]${run.labelFree.latent ? ` [${formatTypicality(run.labelFree.latent, run.labelFree.proportions)}]` : ''}` : '';
    log(`${d.name} seed ${seed} ${f.name}: ${row} Dice ${run.dice.toFixed(3)} (${(run.wallMs / 1000).toFixed(1)} s)${lf}${run.notes.length ? ` | ${run.notes.join(' | ')}` : ''}`);
  };
  const onTarget = { images: target, stats: src.stats };
  const sourceOnly = await runCell(unet, test, seed, src.federated, async () => ({ notes: [] }), onTarget);
  record(SOURCE_ONLY, sourceOnly);
  // Rows with the same input-adapter options share one fit (it only reads the frozen source model and the target).
  const fits = new Map<string, InputAdapterResult>();
  const withFit = (o: AdaptOptions): AdaptOptions => {
    const asked = requestedAdapter(o);
    if (asked === null) return o;
    // The dataset's adapter settings under the row's own (not under the polarity check, which is a fixed setting).
    const a = d.inputAdapter !== undefined && o.inputAdapter !== undefined ? { ...d.inputAdapter, ...asked } : asked;
    const key = JSON.stringify({ a, seed: o.seed, batchSize: o.batchSize });
    let fit = fits.get(key);
    if (fit === undefined) {
      unet.setWeights(src.federated);
      const t0 = performance.now();
      fit = fitInputAdapter(unet, target, src.stats, { batchSize: o.batchSize, seed: o.seed, ...a });
      fits.set(key, fit);
      // A wide search ran the narrow one first: rows asking for the same options without it reuse that part.
      if (fit.narrow !== undefined && a.wideSearch !== undefined) {
        const { wideSearch: _wide, ...narrowOptions } = a;
        fits.set(JSON.stringify({ a: narrowOptions, seed: o.seed, batchSize: o.batchSize }), fit.narrow);
      }
      log(`${d.name} seed ${seed} ${f.name}: input adapter ${JSON.stringify(a)} fitted in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
    }
    return { ...o, fittedAdapter: fit };
  };
  for (const row of cfg.adapt.rows) {
    if (filters.rows && !filters.rows.includes(row.name)) continue;
    const rowOpts = withFit({ ...base, ...row.options } as AdaptOptions);
    // The source-only row scored the unadapted model (same weights, images, statistics and seed, no curve): that is the
    // safeguard's "before" of every row with the suite's seed, not scored again per row.
    const opts = rowOpts.seed === seed ? { ...rowOpts, unadaptedScores: sourceOnly.labelFree } : rowOpts;
    record(row.name, await runCell(unet, test, seed, src.federated, async () => {
      const r = adapt(row.method, unet, target, src.stats, opts);
      // The safeguard scored the model it left in place (same images, statistics, curve and seed): not scored again.
      const guarded = r.safeguard ? { labelFree: r.safeguard.keep ? r.safeguard.after : r.safeguard.before } : {};
      return { curve: r.inputCurve, notes: r.notes, ...guarded };
    }, onTarget));
  }
  const fewLabel = runsReference(filters, 'few-label') ? cfg.fewLabel.cases : [];
  // The labelled references need the labelled target cases; the centralized one does not (it runs either way).
  if (fewLabel.length > 0 || runsReference(filters, 'target-supervised')) {
    const supData = await benchmarkSiteData(d, seed * 100 + 52, f.shift, cfg.targetSupervised.numCases, 'tgt-sup');
    for (const k of fewLabel) {
      const labelled = firstCases(supData, k);
      const opts = withFit({ ...base, ...cfg.fewLabel.options } as AdaptOptions);
      record(fewLabelRow(k), await runCell(unet, test, seed, src.federated, async () => {
        const r = adaptWithLabels(unet, target, labelled, src.stats, opts);
        return { curve: r.inputCurve, notes: r.notes };
      }));
    }
    if (runsReference(filters, 'target-supervised')) {
      record(TARGET_SUPERVISED, await runCell(unet, test, seed, src.federated, async () => ({ notes: [await trainTargetSupervised(cfg, d, unet, supData, seed)] })));
    }
  }
  if (src.centralized) record(CENTRALIZED_SOURCE, await runCell(unet, test, seed, src.centralized, async () => ({ notes: [] })));
}

/**
 * The upper bound, with this dataset's settings (`targetSupervisedOf`): the network (the federated source model, or a
 * fresh one with `init: 'scratch'`) trained on the labelled target slices; with `decay` the last epochs run at a lower
 * rate (a step decay, fresh Adam moments). Returns the row's note.
 */
export async function trainTargetSupervised(cfg: SfdaSuiteConfig, d: SuiteDataset, unet: UNet, data: SliceDataset, seed: number): Promise<string> {
  const t = targetSupervisedOf(cfg, d);
  if (t.init === 'scratch') {
    const fresh = createUNet(unet.config, seed);
    unet.setWeights(fresh.getWeights());
    fresh.dispose();
  }
  const train = (epochs: number, lr: number, s: number) => trainLocal(unet, data, { epochs, batchSize: cfg.federated.batchSize, optimizer: 'adam', lr, loss: 'ce+dice', seed: s });
  await train(t.epochs - (t.decay?.epochs ?? 0), t.lr, seed);
  if (t.decay) await train(t.decay.epochs, t.decay.lr, seed + 1);
  const how = t.init === 'scratch' ? 'network trained from scratch' : 'source model fine-tuned';
  const schedule = t.decay ? `lr ${t.lr}, the last ${t.decay.epochs} at ${t.decay.lr}` : `lr ${t.lr}`;
  return `${how} on ${data.n} labelled target slices (${t.numCases} cases), ${t.epochs} epochs (${schedule})`;
}

const runsReference = (filters: SuiteFilters, r: SuiteReference): boolean => filters.references === undefined || filters.references.includes(r);

/** Row names of a dataset's table, in order. */
export function suiteRows(cfg: SfdaSuiteConfig, filters: SuiteFilters = {}): string[] {
  const rows = [SOURCE_ONLY, ...cfg.adapt.rows.map((r) => r.name).filter((r) => !filters.rows || filters.rows.includes(r))];
  if (runsReference(filters, 'few-label')) rows.push(...cfg.fewLabel.cases.map(fewLabelRow));
  if (runsReference(filters, 'target-supervised')) rows.push(TARGET_SUPERVISED);
  if (runsReference(filters, 'centralized-source')) rows.push(CENTRALIZED_SOURCE);
  return rows;
}

/** Refuses filters naming datasets, families or method rows the suite does not have (a typo would silently run nothing). */
export function checkSuiteFilters(cfg: SfdaSuiteConfig, filters: SuiteFilters): void {
  const check = (what: string, asked: readonly string[] | undefined, known: readonly string[]): void => {
    const unknown = (asked ?? []).filter((a) => !known.includes(a));
    if (unknown.length > 0) throw new SfdaSuiteError(`unknown ${what} ${unknown.map((u) => `"${u}"`).join(', ')}; the suite has ${known.join(', ')}`);
  };
  check('dataset(s)', filters.datasets, cfg.datasets.map((d) => d.name));
  check('family(ies)', filters.families, [...new Set(cfg.datasets.flatMap((d) => d.families.map((f) => f.name)))]);
  check('method row(s)', filters.rows, cfg.adapt.rows.map((r) => r.name));
  check('reference(s)', filters.references, SUITE_REFERENCES);
}

/** One dataset over all seeds. */
export async function runSuiteDataset(cfg: SfdaSuiteConfig, d: SuiteDataset, filters: SuiteFilters, log: (m: string) => void): Promise<DatasetResult> {
  const families = d.families.filter((f) => !filters.families || filters.families.includes(f.name));
  const rows = suiteRows(cfg, filters);
  const cells: DatasetResult['cells'] = Object.fromEntries(rows.map((r) => [r, Object.fromEntries(families.map((f) => [f.name, [] as CellRun[]]))]));
  const source: SourceScore[] = [];
  for (const seed of cfg.seeds) {
    const model = datasetModel(cfg, d);
    const unet = createUNet({ inChannels: 1, numClasses: d.numClasses, baseChannels: model.baseChannels, depth: model.depth }, seed);
    try {
      const src = await trainSources(cfg, d, seed, unet, filters, log);
      source.push(src.score);
      for (const f of families) await runFamily(cfg, d, f, seed, unet, src, filters, (row, run) => cells[row][f.name].push(run), log);
    } finally {
      unet.dispose();
    }
  }
  return { name: d.name, families: families.map((f) => ({ name: f.name, heldOut: f.heldOut })), rows, cells, source };
}
