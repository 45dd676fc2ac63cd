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
import type { PrivacyStatus } from '../strategies/index.ts';
import { writeFileAtomic } from '../../protocol/common/index.ts';
import type { RunOutcome } from '../rounds/index.ts';
import { StatisticsRoundError, type StatisticsRequest, type StatisticsResult } from '../workflows/index.ts';

export const FINAL_WEIGHTS_FILE = 'final-weights.fsws';
export const SOURCE_STATS_FILE = 'source-stats.json';
export const CLASS_HISTOGRAM_FILE = 'class-histogram.json';
export const HISTORY_FILE = 'history.json';
export const RUN_MANIFEST_FILE = 'run.json';
/** What the run spent in differential privacy (the coordinator status's `privacy`), when the run is DP. */
export const PRIVACY_FILE = 'privacy.json';

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
  /** The coordinator status; its `privacy` (DP runs) is written to privacy.json. */
  status?(): { privacy: PrivacyStatus | null };
}

export interface ArtifactReport {
  finalWeights: string;
  sourceStats: { file: string; sites: string[] } | null;
  classHistogram: { file: string; sites: string[]; heterogeneity: number } | null;
  /** Statistics that were requested but not produced, with the reason (e.g. fewer than 3 sites). */
  failures: { artifact: 'source-stats' | 'class-histogram'; reason: string }[];
  /** privacy.json when the run is differentially private, else null. */
  privacy: string | null;
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
  if (history) {
    const done = await completedRun(outDir, round);
    if (done) return done.report;
    for (const f of [RUN_MANIFEST_FILE, SOURCE_STATS_FILE, CLASS_HISTOGRAM_FILE]) await unlink(join(outDir, f)).catch(() => {});
  }
  const final = source.weights();
  await writeFileAtomic(join(outDir, FINAL_WEIGHTS_FILE), encodeWeightSet(final));
  const report: ArtifactReport = { finalWeights: FINAL_WEIGHTS_FILE, sourceStats: null, classHistogram: null, failures: [], privacy: null };
  const outcome = source.outcome?.() ?? null;
  if (s && outcome && !outcome.ok) {
    const reason = `not computed: the run did not train (${outcome.reason})`;
    if (s.sourceStats) report.failures.push({ artifact: 'source-stats', reason });
    if (s.classHistogram) report.failures.push({ artifact: 'class-histogram', reason });
  } else if (s) {
    await writeStatistics(source, outDir, s, final, report);
  }
  const privacy = source.status?.().privacy ?? null;
  if (privacy) {
    await writeFileAtomic(join(outDir, PRIVACY_FILE), JSON.stringify(privacy, null, 2));
    report.privacy = PRIVACY_FILE;
  }
  if (history) {
    await writeFileAtomic(join(outDir, HISTORY_FILE), JSON.stringify(history, null, 2));
    const manifest: RunManifest = { v: 1, kind: 'fedsfda-run', round, outcome, report, writtenAt: new Date().toISOString() };
    await writeFileAtomic(join(outDir, RUN_MANIFEST_FILE), JSON.stringify(manifest, null, 2));
  }
  return report;
}

async function writeStatistics(source: ArtifactSource, outDir: string, s: z.output<typeof runStatisticsSchema>, final: WeightSet, report: ArtifactReport): Promise<void> {
  const scale = 1 / s.pixelBound;
  // A statistics round names each site it left out and why (e.g. "exceed the public bound"): keep that.
  const reason = (e: unknown): string => {
    if (!(e instanceof Error)) return String(e);
    const failures = e instanceof StatisticsRoundError ? e.failures.map((f) => `${f.siteId}: ${f.reason}`) : [];
    return failures.length > 0 ? `${e.message} (${failures.join('; ')})` : e.message;
  };
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
