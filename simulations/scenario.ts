/**
 * Scenario files: what `fedsfda simulate --config FILE` runs. Validated with zod so that a wrong
 * config is refused before any process starts, with the path of the offending field.
 */
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, readJsonFile, validateConfig, type ConfigIssue } from '../protocol/common/index.ts';
import { secureAggregationConfigSchema } from '../coordinator/index.ts';
import { STRATEGY_NAMES } from '../coordinator/strategies/create-strategy.ts';
import { differentialPrivacyConfigSchema } from '../coordinator/strategies/dp-config.ts';
import { dpSgdConfigSchema, statisticsDpConfigSchema } from '../protocol/privacy/index.ts';
import { ScannerShiftOrPresetSchema } from './phantoms/index.ts';
import { IntensityAugmentSchema } from '../site-agent/training/intensity-augment.ts';

export const siteSpecSchema = z
  .object({
    id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/, 'site ids are lowercase letters, digits and dashes'),
    /** Phantom sites: a scanner preset name (simulations/phantoms) or an inline shift spec. */
    shift: ScannerShiftOrPresetSchema.optional(),
    /** Phantom sites: number of generated volumes. */
    numCases: z.number().int().min(1).max(1000).optional(),
    /** Folder sites: a Decathlon / nnU-Net / plain dataset folder (relative paths are relative to the scenario file). */
    dataDir: z.string().min(1).optional(),
  })
  .strict()
  .refine((s) => (s.dataDir === undefined) !== (s.shift === undefined && s.numCases === undefined), {
    message: 'a site has either dataDir (a dataset folder) or shift + numCases (phantoms), not both',
  })
  .refine((s) => s.dataDir === undefined || (s.shift === undefined && s.numCases === undefined), {
    message: 'a site has either dataDir (a dataset folder) or shift (+ numCases) for phantoms, not both',
  });

/**
 * Non-IID splits of one pool of phantom cases across the sites (simulations/partition): `dirichlet` skews which
 * classes each site sees (Dirichlet(alpha) over class presence or volume), `quantity` skews how many cases each
 * site holds. Each site still sees the pool through its own scanner (`shift`).
 */
export const partitionSpecSchema = z.discriminatedUnion('kind', [
  z.object({
    kind: z.literal('dirichlet'),
    alpha: z.number().positive(),
    by: z.enum(['presence', 'volume']).default('presence'),
    poolCases: z.number().int().min(2).max(10_000),
    minCasesPerSite: z.number().int().min(2).default(2),
  }).strict(),
  z.object({
    kind: z.literal('quantity'),
    alpha: z.number().positive(),
    poolCases: z.number().int().min(2).max(10_000),
    minCasesPerSite: z.number().int().min(2).default(2),
  }).strict(),
]);
export type PartitionSpec = z.infer<typeof partitionSpecSchema>;

/** Builds the datasets the folder sites use before the run, unless they already exist. */
export const prepareSchema = z.object({
  kind: z.literal('mricron'),
  /** Output folder (relative to the scenario file); site i lands in `<out>/site-<i>`. */
  out: z.string().min(1),
  sites: z.number().int().min(1).max(64),
  casesPerSite: z.number().int().min(1).max(1000).optional(),
  slabSlices: z.number().int().min(1).max(512).optional(),
  downsample: z.number().int().min(1).max(8).optional(),
  labels: z.enum(['aal4', 'aal5', 'brain']).optional(),
  scanners: z.array(ScannerShiftOrPresetSchema).optional(),
  seed: z.number().int().optional(),
  /** 2: each case also gets a simulated T2-like contrast (two input channels). */
  contrasts: z.union([z.literal(1), z.literal(2)]).optional(),
}).strict();

export const federatedScenarioSchema = z.object({
  kind: z.literal('federated').default('federated'),
  name: z.string().min(1),
  seed: z.number().int().default(1),
  data: z.object({
    size: z.number().int().min(8).max(512),
    numClasses: z.number().int().min(2).max(16),
    slicesPerCase: z.number().int().min(1).max(512),
    /** Fraction of each site's cases held out for local validation (split by case, never by slice). */
    valFraction: z.number().gt(0).lt(1).default(0.25),
    /** Input channels of the model (the sites' datasets must have this many, e.g. two MR contrasts). */
    channels: z.number().int().min(1).max(16).default(1),
    /**
     * Phantoms only: per foreground class, the probability that a case contains it (label skew; with a Dirichlet
     * partition `by: "presence"` sites then differ in which structures they have labelled). Default: always.
     */
    classPresence: z.array(z.number().min(0).max(1)).optional(),
  }).strict(),
  prepare: prepareSchema.optional(),
  partition: partitionSpecSchema.optional(),
  sites: z.array(siteSpecSchema).min(1).max(256),
  /**
   * Sites run per site process (default 1: one process per hospital). Sites sharing a process share only the
   * engine; each keeps its own data, identity, trainer and connection. A hundred sites on one machine: 10 or more.
   */
  sitesPerProcess: z.number().int().min(1).max(256).default(1),
  model: z.object({
    baseChannels: z.number().int().min(1).max(128),
    depth: z.number().int().min(1).max(5),
    /** 'group': the GroupNorm U-Net (no batch-norm statistics), which sample-level DP-SGD needs. */
    normalization: z.enum(['batch', 'group']).default('batch'),
  }).strict(),
  training: z.object({
    rounds: z.number().int().min(1).max(1000),
    localEpochs: z.number().int().min(1).max(100),
    batchSize: z.number().int().min(1).max(256),
    lr: z.number().positive(),
    optimizer: z.enum(['sgd', 'adam']).default('adam'),
    loss: z.enum(['ce', 'dice', 'ce+dice']).default('ce+dice'),
    strategy: z.enum(STRATEGY_NAMES).default('fedavg'),
    proximalMu: z.number().min(0).default(0),
    /** After the last round, each site fine-tunes the final model for this many local epochs and reports both scores. */
    personalizeEpochs: z.number().int().min(0).max(100).default(0),
    minSites: z.number().int().min(1).optional(),
    /** Per-stage timeout of the coordinator's round state machine. */
    stageTimeoutMs: z.number().int().min(1000).default(600_000),
    /**
     * Secure aggregation (SecAgg+): the coordinator learns only the sum of the sites' weighted updates.
     * Same fields as the coordinator's `secureAggregation` option (coordinator/workflows/secure-fit.ts).
     */
    secureAggregation: secureAggregationConfigSchema.optional(),
    /**
     * Client-level differential privacy (DP-FedAvg): same fields as the coordinator's `differentialPrivacy`
     * (coordinator/strategies/dp-config.ts). A scenario over its `maxEpsilon` refuses to start.
     */
    differentialPrivacy: differentialPrivacyConfigSchema.optional(),
    /**
     * Sample-level DP-SGD at every site (protocol/privacy/dp-sgd-plan.ts): each site clips every training slice's
     * gradient and adds noise, and accounts its own epsilon over all its local steps. Needs model.normalization
     * 'group'. `seed` makes the sampling and noise reproducible (simulations only: a known seed leaves no privacy).
     */
    dpSgd: dpSgdConfigSchema.optional(),
    /**
     * Source-side intensity augmentation (site-agent/training/intensity-augment.ts): every round each site trains
     * on a fresh augmented copy of its training split (`{}` = the nnU-Net-style set at p 0.5; `gin`, `biasField`
     * add domain randomisation). Statistics rounds and evaluation see the plain split. Off when absent.
     */
    augment: IntensityAugmentSchema.optional(),
  }).strict(),
  /**
   * The statistics rounds after the last round (source-stats.json, class-histogram.json): `differentialPrivacy` has
   * the coordinator config's `statistics.differentialPrivacy` fields (protocol/privacy/dp-statistics.ts); its
   * `unitPixels` defaults to the scenario's pixels per case (or per slice).
   */
  statistics: z.object({
    confidence: z.number().gt(0).lt(1).default(0.97),
    differentialPrivacy: statisticsDpConfigSchema.optional(),
  }).strict().optional(),
}).strict().superRefine((s, ctx) => {
  if (s.training.dpSgd && s.model.normalization !== 'group') {
    ctx.addIssue({ code: 'custom', path: ['model', 'normalization'], message: 'training.dpSgd needs model.normalization "group": batch norm mixes the slices of a batch, so per-slice gradients (and their clipping) are undefined' });
  }
});

export type FederatedScenario = z.infer<typeof federatedScenarioSchema>;

export class ScenarioError extends Error {
  readonly code = 'bad-scenario' as const;
  /** Each problem with its JSON path and, when known, line and column (empty for a whole-file reason). */
  readonly issues: readonly ConfigIssue[];
  constructor(
    readonly file: string,
    reason: string | ConfigError,
  ) {
    super(typeof reason === 'string' ? `scenario ${file}: ${reason}` : `scenario ${file} is invalid:\n  ${reason.message.split('\n').join('\n  ')}`);
    this.name = 'ScenarioError';
    this.issues = typeof reason === 'string' ? [] : reason.issues;
  }
}

/** Reads a scenario file (JSON syntax errors with line and column); the `kind` field selects the schema. */
export async function loadScenarioFile(file: string): Promise<{ kind: string; raw: unknown; text: string }> {
  let loaded: { raw: unknown; text: string };
  try {
    loaded = await readJsonFile(file);
  } catch (err) {
    throw err instanceof ConfigError ? new ScenarioError(file, err) : err;
  }
  const { raw, text } = loaded;
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw new ScenarioError(file, 'must be a JSON object');
  const kind = (raw as { kind?: unknown }).kind ?? 'federated';
  if (typeof kind !== 'string') throw new ScenarioError(file, '"kind" must be a string');
  return { kind, raw, text };
}

/** Validates a federated scenario (strict: unknown keys are errors); `text` (the file's) adds line and column. */
export function parseFederatedScenario(file: string, raw: unknown, text?: string): FederatedScenario {
  let data: FederatedScenario;
  try {
    data = validateConfig(federatedScenarioSchema, raw, file, text);
  } catch (err) {
    throw err instanceof ConfigError ? new ScenarioError(file, err) : err;
  }
  const parsed = { data };
  const ids = new Set<string>();
  for (const s of parsed.data.sites) {
    if (ids.has(s.id)) throw new ScenarioError(file, `sites: duplicate site id "${s.id}"`);
    ids.add(s.id);
  }
  for (const [i, site] of parsed.data.sites.entries()) {
    if (site.dataDir !== undefined && parsed.data.partition) {
      throw new ScenarioError(file, `sites.${i}: a partitioned scenario splits one phantom pool; dataDir sites cannot take part`);
    }
    if (site.dataDir === undefined && site.shift === undefined) throw new ScenarioError(file, `sites.${i}: needs dataDir or shift`);
    if (site.dataDir === undefined && parsed.data.data.channels > 1) {
      throw new ScenarioError(file, `sites.${i}: data.channels ${parsed.data.data.channels} needs dataset folders (dataDir) with that many input channels; in-process phantom sites have one`);
    }
    if (site.dataDir === undefined && !parsed.data.partition && site.numCases === undefined) {
      throw new ScenarioError(file, `sites.${i}: a phantom site needs numCases (or a scenario-level partition)`);
    }
  }
  const presence = parsed.data.data.classPresence;
  if (presence && presence.length !== parsed.data.data.numClasses - 1) {
    throw new ScenarioError(file, `data.classPresence: needs ${parsed.data.data.numClasses - 1} probabilities (one per foreground class), got ${presence.length}`);
  }
  const p = parsed.data.partition;
  if (p && p.poolCases < p.minCasesPerSite * parsed.data.sites.length) {
    throw new ScenarioError(file, `partition.poolCases (${p.poolCases}) < minCasesPerSite x sites (${p.minCasesPerSite * parsed.data.sites.length})`);
  }
  const min = parsed.data.training.minSites ?? parsed.data.sites.length;
  if (min > parsed.data.sites.length) {
    throw new ScenarioError(file, `training.minSites (${min}) exceeds the number of sites (${parsed.data.sites.length})`);
  }
  // Paths in a scenario are relative to the scenario file, so a scenario folder can be moved as a whole.
  const base = dirname(resolve(file));
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(base, p));
  return {
    ...parsed.data,
    ...(parsed.data.prepare ? { prepare: { ...parsed.data.prepare, out: abs(parsed.data.prepare.out) } } : {}),
    sites: parsed.data.sites.map((site) => (site.dataDir ? { ...site, dataDir: abs(site.dataDir) } : site)),
  };
}
