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
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { CLASS_HISTOGRAM_REQUEST, classHistogramFromVectors } from '../protocol/class-histogram-vectors.ts';
import { headDimensions } from '../protocol/contracts/index.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { SOURCE_STATS_REQUEST, sourceStatsFromVectors } from '../protocol/source-stats-vectors.ts';
import { encodeWeightSet } from '../protocol/tensor-codec.ts';
import { StatisticsRoundError, type StatisticsRequest, type StatisticsResult } from './statistics-round.ts';

export const FINAL_WEIGHTS_FILE = 'final-weights.fsws';
export const SOURCE_STATS_FILE = 'source-stats.json';
export const CLASS_HISTOGRAM_FILE = 'class-histogram.json';

/** The `statistics` block of a coordinator config / what the simulation passes. */
export const runStatisticsSchema = z
  .object({
    /**
     * Public upper bound on the labelled training pixels of the whole federation. Sites scale their statistics
     * by 1 / pixelBound so that they fit the masked sum's clipping range; a site above it refuses (typed error).
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
}

export interface ArtifactReport {
  finalWeights: string;
  sourceStats: { file: string; sites: string[] } | null;
  classHistogram: { file: string; sites: string[]; heterogeneity: number } | null;
  /** Statistics that were requested but not produced, with the reason (e.g. fewer than 3 sites). */
  failures: { artifact: 'source-stats' | 'class-histogram'; reason: string }[];
}

/** Writes the final model, then runs the requested statistics rounds; a failed statistic is reported, not thrown. */
export async function writeRunArtifacts(source: ArtifactSource, outDir: string, statistics?: RunStatistics): Promise<ArtifactReport> {
  const s = statistics === undefined ? undefined : runStatisticsSchema.parse(statistics); // bad settings: nothing written
  const final = source.weights();
  await writeFile(join(outDir, FINAL_WEIGHTS_FILE), encodeWeightSet(final));
  const report: ArtifactReport = { finalWeights: FINAL_WEIGHTS_FILE, sourceStats: null, classHistogram: null, failures: [] };
  if (!s) return report;
  const scale = 1 / s.pixelBound;
  // A statistics round names each site it left out and why (e.g. "exceed the public bound"): keep that.
  const reason = (e: unknown): string => {
    if (!(e instanceof Error)) return String(e);
    const failures = e instanceof StatisticsRoundError ? e.failures.map((f) => `${f.siteId}: ${f.reason}`) : [];
    return failures.length > 0 ? `${e.message} (${failures.join('; ')})` : e.message;
  };
  if (s.sourceStats) {
    try {
      // Moments of latent features are not bounded by 1 like counts: a wide clip (1e4) keeps them unclipped.
      const { sums, included } = await source.runStatisticsRound({ name: SOURCE_STATS_REQUEST, config: { scale, confidence: s.confidence }, clip: 1e4 });
      const stats = sourceStatsFromVectors(sums, { ...headDimensions(final), confidence: s.confidence, numSites: included.length, scale });
      await writeFile(join(outDir, SOURCE_STATS_FILE), JSON.stringify(stats));
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
      await writeFile(join(outDir, CLASS_HISTOGRAM_FILE), JSON.stringify({ ...hist, sites: included }, null, 2));
      report.classHistogram = { file: CLASS_HISTOGRAM_FILE, sites: included, heterogeneity: hist.heterogeneity };
    } catch (e) {
      report.failures.push({ artifact: 'class-histogram', reason: reason(e) });
    }
  }
  return report;
}
