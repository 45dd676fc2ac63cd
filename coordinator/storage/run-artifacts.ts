/**
 * What a finished federation leaves in its output folder, for the consortium and for a new hospital:
 *   final-weights.fsws    the final global model (tensor codec; `fedsfda adapt --model` reads it directly)
 *   source-stats.json     BN moments and per-class latent sufficient statistics of the final model on every
 *                         site's data, pooled by a masked-sum statistics round (source-free adaptation's input)
 *   class-histogram.json  the non-IID report from masked sums (protocol/class-histogram-vectors.ts)
 * Both statistics rounds run after the last round while the sites are still connected (`afterRounds`), need
 * >= 3 sites (with 2, the sum minus one's own reveals the other's) and reveal only sums. Used by
 * `fedsfda coordinator --out` and by the simulation's coordinator process. Never imports tfjs.
 */
import { access, readFile, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import {
  CLASS_HISTOGRAM_REQUEST,
  classHistogramFromVectors,
  encodeWeightSet,
  SOURCE_STATS_REQUEST,
  sourceStatsFromVectors,
  type WeightSet,
} from '../../protocol/index.ts';
import { headDimensions, type RoundRecord } from '../../protocol/contracts/index.ts';
import {
  composeRunPrivacy,
  cryptoNoiseSource,
  PrivacyError,
  postProcessDpSourceStats,
  seededNoiseSource,
  statisticsDpConfigSchema,
  statisticsDpToConfig,
  statisticsNoiseMultiplier,
  unscaleClassHistogramSums,
  unscaleSourceStatsSums,
  type PrivacyEvent,
  type RunPrivacyReport,
  type StatisticsDpSettings,
} from '../../protocol/privacy/index.ts';
import type { PrivacyStatus } from '../strategies/index.ts';
import { removeLeftoverTempFiles, writeFileAtomic } from '../../protocol/common/index.ts';
import type { RunOutcome } from '../rounds/index.ts';
import { StatisticsRoundError, type StatisticsRequest, type StatisticsResult } from '../workflows/index.ts';

export const FINAL_WEIGHTS_FILE = 'final-weights.fsws';
export const SOURCE_STATS_FILE = 'source-stats.json';
export const CLASS_HISTOGRAM_FILE = 'class-histogram.json';
export const HISTORY_FILE = 'history.json';
export const RUN_MANIFEST_FILE = 'run.json';
/** What the run spent in differential privacy (the coordinator status's `privacy`), when the run is DP. */
export const PRIVACY_FILE = 'privacy.json';
/** The whole ledger (training and statistics composed; RunPrivacyReport), when anything is DP. */
export const PRIVACY_LEDGER_FILE = 'privacy-ledger.json';

/** The `statistics` block of a coordinator config / what the simulation passes. */
export const runStatisticsSchema = z
  .object({
    /**
     * Public upper bound on the labelled training pixels of the whole federation. Sites scale their statistics
     * by 1 / pixelBound so that counts and histogram entries lie in [0, 1] (the class histogram's clipping range;
     * a site above it refuses, typed error). The source statistics' ranges are sized from the data.
     */
    pixelBound: z.number().positive(),
    sourceStats: z.boolean().default(true),
    classHistogram: z.boolean().default(true),
    /** Max-softmax threshold for the confident latent moments of the source statistics. */
    confidence: z.number().gt(0).lt(1).default(0.97),
    /**
     * Differential privacy of both statistics (protocol/privacy/dp-statistics.ts): per-unit (case or slice) bounded
     * contributions, Gaussian noise, accounted with the training in one ledger; the guarantee is written into
     * source-stats.json and class-histogram.json (`privacy`). Without it the statistics carry no DP guarantee.
     */
    differentialPrivacy: statisticsDpConfigSchema.optional(),
  })
  .strict();
export type RunStatistics = z.input<typeof runStatisticsSchema>;

/** The part of a coordinator handle this needs. */
export interface ArtifactSource {
  weights(): WeightSet;
  runStatisticsRound(request: StatisticsRequest): Promise<StatisticsResult>;
  /** With it, history.json and the run manifest (run.json) are written too, and a completed folder is not redone. */
  history?(): RoundRecord[];
  /** Whether the run trained (run-checks.ts); statistics of a run that did not are skipped. */
  outcome?(): RunOutcome | null;
  /** The coordinator status; its `privacy` (DP runs) is written to privacy.json, its `privacyLedger` to privacy-ledger.json. */
  status?(): { privacy: PrivacyStatus | null; privacyLedger?: RunPrivacyReport | null; secureAggregation?: { enabled: boolean } };
}

export interface ArtifactReport {
  finalWeights: string;
  sourceStats: { file: string; sites: string[] } | null;
  classHistogram: { file: string; sites: string[]; heterogeneity: number } | null;
  /** Statistics that were requested but not produced, with the reason (e.g. fewer than 3 sites). */
  failures: { artifact: 'source-stats' | 'class-histogram'; reason: string }[];
  /** privacy.json when the run is differentially private, else null. */
  privacy: string | null;
  /** privacy-ledger.json (training + statistics composed) when anything is DP. */
  privacyLedger: string | null;
}

/**
 * run.json, written last: the folder is complete for `round` when it exists and names it. A coordinator restarted
 * after the artifacts were written (the sites may be gone) recognises the finished folder and does not redo it.
 */
export const runManifestSchema = z
  .object({
    v: z.literal(1),
    kind: z.literal('fedsfda-run'),
    round: z.number().int().min(0),
    outcome: z.object({ ok: z.boolean(), rounds: z.number().int(), aggregatedRounds: z.number().int(), reason: z.string().nullable() }).nullable(),
    report: z.object({
      finalWeights: z.string(),
      sourceStats: z.object({ file: z.string(), sites: z.array(z.string()) }).nullable(),
      classHistogram: z.object({ file: z.string(), sites: z.array(z.string()), heterogeneity: z.number() }).nullable(),
      failures: z.array(z.object({ artifact: z.enum(['source-stats', 'class-histogram']), reason: z.string() })),
      privacy: z.string().nullable().default(null),
      privacyLedger: z.string().nullable().default(null),
    }),
    writtenAt: z.string(),
  })
  .strict();
export type RunManifest = z.infer<typeof runManifestSchema>;

/** The folder's manifest if it is complete for `round` (every file it names present), else null. */
export async function completedRun(outDir: string, round: number): Promise<RunManifest | null> {
  let manifest: RunManifest;
  try {
    manifest = runManifestSchema.parse(JSON.parse(await readFile(join(outDir, RUN_MANIFEST_FILE), 'utf8')));
  } catch {
    return null;
  }
  if (manifest.round !== round) return null;
  const files = [manifest.report.finalWeights, HISTORY_FILE, manifest.report.sourceStats?.file, manifest.report.classHistogram?.file];
  for (const f of files) {
    if (f === undefined) continue;
    try {
      await access(join(outDir, f));
    } catch {
      return null;
    }
  }
  return manifest;
}

/**
 * Writes the final model, runs the requested statistics rounds (a failed statistic is reported, not thrown), then
 * history.json and run.json. Every file is replaced atomically; files of an earlier, interrupted attempt are removed
 * first, so the folder never mixes two attempts. A folder already complete for this round is left as it is.
 */
export async function writeRunArtifacts(source: ArtifactSource, outDir: string, statistics?: RunStatistics): Promise<ArtifactReport> {
  const s = statistics === undefined ? undefined : runStatisticsSchema.parse(statistics); // bad settings: nothing written
  const history = source.history?.();
  const round = history && history.length > 0 ? history[history.length - 1].round : 0;
  // A coordinator killed in the middle of an atomic write left its temp file here: the folder is not complete with it.
  await removeLeftoverTempFiles(outDir);
  if (history) {
    const done = await completedRun(outDir, round);
    if (done) return done.report;
    for (const f of [RUN_MANIFEST_FILE, SOURCE_STATS_FILE, CLASS_HISTOGRAM_FILE]) await unlink(join(outDir, f)).catch(() => {});
  }
  const final = source.weights();
  await writeFileAtomic(join(outDir, FINAL_WEIGHTS_FILE), encodeWeightSet(final));
  const report: ArtifactReport = { finalWeights: FINAL_WEIGHTS_FILE, sourceStats: null, classHistogram: null, failures: [], privacy: null, privacyLedger: null };
  const outcome = source.outcome?.() ?? null;
  if (s && outcome && !outcome.ok) {
    const reason = `not computed: the run did not train (${outcome.reason})`;
    if (s.sourceStats) report.failures.push({ artifact: 'source-stats', reason });
    if (s.classHistogram) report.failures.push({ artifact: 'class-histogram', reason });
  } else if (s) {
    await writeStatistics(source, outDir, s, final, report);
  }
  const status = source.status?.();
  const privacy = status?.privacy ?? null;
  if (privacy) {
    await writeFileAtomic(join(outDir, PRIVACY_FILE), JSON.stringify(privacy, null, 2));
    report.privacy = PRIVACY_FILE;
  }
  const ledger = status?.privacyLedger ?? null;
  if (ledger) {
    await writeFileAtomic(join(outDir, PRIVACY_LEDGER_FILE), JSON.stringify(ledger, null, 2));
    report.privacyLedger = PRIVACY_LEDGER_FILE;
  }
  if (history) {
    await writeFileAtomic(join(outDir, HISTORY_FILE), JSON.stringify(history, null, 2));
    const manifest: RunManifest = { v: 1, kind: 'fedsfda-run', round, outcome, report, writtenAt: new Date().toISOString() };
    await writeFileAtomic(join(outDir, RUN_MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  }
  return report;
}

/** The DP settings of one statistics run: mode, noise multiplier (calibrated over the releases), and the budget check. */
interface DpStatisticsRun {
  readonly settings: StatisticsDpSettings;
  readonly mode: 'central' | 'distributed';
  readonly noiseMultiplier: number;
  readonly unitPixels: number;
  readonly trainingEvents: readonly PrivacyEvent[];
  readonly delta: number;
}

/** Default nominal pixels of a privacy unit when the config gives none (only sets the count units' precision). */
const DEFAULT_UNIT_PIXELS = 4096;

function dpStatisticsRun(source: ArtifactSource, s: z.output<typeof runStatisticsSchema>): DpStatisticsRun | null {
  const settings = s.differentialPrivacy;
  if (!settings) return null;
  const releases = (s.sourceStats ? 1 : 0) + (s.classHistogram ? 1 : 0);
  const status = source.status?.();
  const training = status?.privacy ?? null;
  if (training && training.delta !== settings.delta) {
    throw new PrivacyError('bad-argument', `statistics delta ${settings.delta} differs from the training's ${training.delta}: one ledger needs one delta`);
  }
  const run: DpStatisticsRun = {
    settings,
    mode: settings.mode ?? (status?.secureAggregation?.enabled ? 'distributed' : 'central'),
    noiseMultiplier: statisticsNoiseMultiplier(settings, Math.max(1, releases)),
    unitPixels: settings.unitPixels ?? DEFAULT_UNIT_PIXELS,
    trainingEvents: training?.events ?? [],
    delta: settings.delta,
  };
  // Before any release: what training spent, composed with the planned statistics releases.
  checkStatisticsBudget(run.trainingEvents, s);
  return run;
}

/**
 * Throws PrivacyError('budget-exceeded') when `training` (events spent or planned) and the statistics releases the
 * config plans (Gaussian at z, q = 1, one per statistic) compose to more than `maxTotalEpsilon`. A run calls it before
 * it starts (with the training's planned events: simulations/runner/run-folder.ts) and again before the release.
 */
export function checkStatisticsBudget(training: readonly PrivacyEvent[], statistics: RunStatistics): void {
  const s = runStatisticsSchema.parse(statistics);
  const settings = s.differentialPrivacy;
  if (settings?.maxTotalEpsilon === undefined) return;
  const releases = (s.sourceStats ? 1 : 0) + (s.classHistogram ? 1 : 0);
  const z = statisticsNoiseMultiplier(settings, Math.max(1, releases));
  const planned: PrivacyEvent[] = Array.from({ length: releases }, (_, i) => ({ mechanism: 'sampled-gaussian', label: `stats/planned-${i}`, samplingRate: 1, noiseMultiplier: z, steps: 1 }));
  const total = composeRunPrivacy(training, planned, settings.delta).epsilon;
  if (total > settings.maxTotalEpsilon) {
    const trained = composeRunPrivacy(training, [], settings.delta).epsilon;
    throw new PrivacyError(
      'budget-exceeded',
      `training (epsilon ${trained.toFixed(3)}) and ${releases} statistics release(s) at noise multiplier ${z.toFixed(3)} spend epsilon ${total.toFixed(3)} > maxTotalEpsilon ${settings.maxTotalEpsilon} (delta ${settings.delta}): nothing released`,
    );
  }
}

/** The guarantee a released statistic carries, written into its file (`privacy`). */
function releaseMetadata(dp: DpStatisticsRun, released: PrivacyEvent[], own: PrivacyEvent) {
  const run = composeRunPrivacy(dp.trainingEvents, released, dp.delta);
  return {
    mechanism: own.mechanism === 'distributed-discrete-gaussian' ? ('distributed-discrete-gaussian' as const) : ('gaussian' as const),
    unit: dp.settings.unit,
    epsilon: composeRunPrivacy([], [own], dp.delta).epsilon,
    delta: dp.delta,
    runEpsilon: run.epsilon,
    noiseMultiplier: dp.noiseMultiplier,
    maxUnitsPerSite: dp.settings.maxUnitsPerSite,
    featureClip: dp.settings.featureClip,
    activationClip: dp.settings.activationClip,
    unitPixels: dp.unitPixels,
  };
}

function dpRequestFor(dp: DpStatisticsRun, name: string): Pick<StatisticsRequest, 'dp' | 'config'> {
  const seed = dp.settings.seed;
  return {
    config: statisticsDpToConfig({ unit: dp.settings.unit, maxUnits: dp.settings.maxUnitsPerSite, featureClip: dp.settings.featureClip, activationClip: dp.settings.activationClip, unitPixels: dp.unitPixels, delta: dp.delta }),
    dp: {
      mode: dp.mode,
      noiseMultiplier: dp.noiseMultiplier,
      maxUnits: dp.settings.maxUnitsPerSite,
      delta: dp.delta,
      label: `stats/${name}`,
      ...(dp.settings.minSurvivors !== undefined ? { minSurvivors: dp.settings.minSurvivors } : {}),
      noise: seed !== undefined ? seededNoiseSource(`stats/${name}/${seed}`) : cryptoNoiseSource(),
    },
  };
}

async function writeStatistics(source: ArtifactSource, outDir: string, s: z.output<typeof runStatisticsSchema>, final: WeightSet, report: ArtifactReport): Promise<void> {
  const scale = 1 / s.pixelBound;
  // A statistics round names each site it left out and why (e.g. "exceed the public bound"): keep that.
  const reason = (e: unknown): string => {
    if (!(e instanceof Error)) return String(e);
    const failures = e instanceof StatisticsRoundError ? e.failures.map((f) => `${f.siteId}: ${f.reason}`) : [];
    return failures.length > 0 ? `${e.message} (${failures.join('; ')})` : e.message;
  };
  let dp: DpStatisticsRun | null;
  try {
    dp = dpStatisticsRun(source, s);
  } catch (e) {
    if (s.sourceStats) report.failures.push({ artifact: 'source-stats', reason: reason(e) });
    if (s.classHistogram) report.failures.push({ artifact: 'class-histogram', reason: reason(e) });
    return;
  }
  if (dp) return writeDpStatistics(source, outDir, s, final, report, dp, reason);
  if (s.sourceStats) {
    try {
      // Sums of squares and outer products of activations have no bound known in advance (a DP-noised model's exceed
      // any fixed clip): each vector's range is sized from the data by a first masked sum (statistic-range.ts).
      const { sums, included } = await source.runStatisticsRound({ name: SOURCE_STATS_REQUEST, config: { scale, confidence: s.confidence }, scaled: true });
      const stats = sourceStatsFromVectors(sums, { ...headDimensions(final), confidence: s.confidence, numSites: included.length, scale });
      await writeFileAtomic(join(outDir, SOURCE_STATS_FILE), JSON.stringify(stats));
      report.sourceStats = { file: SOURCE_STATS_FILE, sites: included };
    } catch (e) {
      report.failures.push({ artifact: 'source-stats', reason: reason(e) });
    }
  }
  if (s.classHistogram) {
    try {
      // Every class-histogram entry lies in [0, 1] (class-histogram-vectors.ts): clip 1, the finest step.
      const { sums, included } = await source.runStatisticsRound({ name: CLASS_HISTOGRAM_REQUEST, config: { scale }, clip: 1 });
      const hist = classHistogramFromVectors(sums, { numSites: included.length, scale });
      await writeFileAtomic(join(outDir, CLASS_HISTOGRAM_FILE), JSON.stringify({ ...hist, sites: included }, null, 2));
      report.classHistogram = { file: CLASS_HISTOGRAM_FILE, sites: included, heterogeneity: hist.heterogeneity };
    } catch (e) {
      report.failures.push({ artifact: 'class-histogram', reason: reason(e) });
    }
  }
}

/** Both statistics as DP releases (see dpStatisticsRun); each file says what guarantee it carries. */
async function writeDpStatistics(
  source: ArtifactSource,
  outDir: string,
  s: z.output<typeof runStatisticsSchema>,
  final: WeightSet,
  report: ArtifactReport,
  dp: DpStatisticsRun,
  reason: (e: unknown) => string,
): Promise<void> {
  const released: PrivacyEvent[] = [];
  if (s.sourceStats) {
    try {
      const req = dpRequestFor(dp, SOURCE_STATS_REQUEST);
      const { sums, included, privacy } = await source.runStatisticsRound({ name: SOURCE_STATS_REQUEST, config: { ...req.config, confidence: s.confidence }, ...req });
      if (!privacy) throw new Error('the statistics round did not report its privacy');
      released.push(privacy.event);
      const clips = { featureClip: dp.settings.featureClip, activationClip: dp.settings.activationClip };
      const real = unscaleSourceStatsSums(sums, { scale: privacy.scale, unitPixels: dp.unitPixels, clips });
      const stats = postProcessDpSourceStats(sourceStatsFromVectors(real, { ...headDimensions(final), confidence: s.confidence, numSites: included.length, scale: 1 }));
      await writeFileAtomic(join(outDir, SOURCE_STATS_FILE), JSON.stringify({ ...stats, privacy: releaseMetadata(dp, released, privacy.event) }));
      report.sourceStats = { file: SOURCE_STATS_FILE, sites: included };
    } catch (e) {
      report.failures.push({ artifact: 'source-stats', reason: reason(e) });
    }
  }
  if (s.classHistogram) {
    try {
      const req = dpRequestFor(dp, CLASS_HISTOGRAM_REQUEST);
      const { sums, included, privacy } = await source.runStatisticsRound({ name: CLASS_HISTOGRAM_REQUEST, ...req });
      if (!privacy) throw new Error('the statistics round did not report its privacy');
      released.push(privacy.event);
      const hist = classHistogramFromVectors(unscaleClassHistogramSums(sums, { scale: privacy.scale, unitPixels: dp.unitPixels }), { numSites: included.length, scale: 1 });
      await writeFileAtomic(join(outDir, CLASS_HISTOGRAM_FILE), JSON.stringify({ ...hist, sites: included, privacy: releaseMetadata(dp, released, privacy.event) }, null, 2));
      report.classHistogram = { file: CLASS_HISTOGRAM_FILE, sites: included, heterogeneity: hist.heterogeneity };
    } catch (e) {
      report.failures.push({ artifact: 'class-histogram', reason: reason(e) });
    }
  }
}
