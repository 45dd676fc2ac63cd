/** What the coordinator records per round: the shape of `GET /rounds`, `handle.history()` and checkpoints. */
import { z } from 'zod';
import type { RoundFailure } from '../strategies/index.ts';

export interface SiteRoundRecord {
  siteId: string;
  /**
   * Examples the site trained on this round (0 if it did not fit successfully; null under secure aggregation,
   * where the coordinator only learns the total, in `RoundRecord.secureAggregation.totalExamples`).
   */
  numExamples: number | null;
  /** The site's reported `trainLoss` metric, or null. */
  trainLoss: number | null;
  fitMetrics: Record<string, number>;
  evalNumExamples: number | null;
  /** The site's evaluation metrics on the *aggregated* model of this round (dice, diceClass1...), or null. */
  evalMetrics: Record<string, number> | null;
}

export interface RoundRecord {
  round: number;
  /** Example-weighted mean of the sites' `trainLoss`, or null if no site reported one. */
  meanTrainLoss: number | null;
  /** False when too few sites replied and the global model was kept. */
  aggregated: boolean;
  sites: SiteRoundRecord[];
  failures: RoundFailure[];
  /** Strategy's aggregate of the evaluation metrics (example-weighted means by default). */
  evalMetrics: Record<string, number> | null;
  fitMetrics: Record<string, number>;
  startedAt: string;
  durationMs: number;
  /** Why the strategy could not aggregate (it threw); absent or null when it did not fail. */
  strategyError?: string | null;
  /** Present for secure-aggregation rounds: whose updates are in the sum, and the total example count. */
  secureAggregation?: { included: string[]; excluded: string[]; totalExamples: number; error: string | null };
}

const metrics = z.record(z.string(), z.number());
const failure = z.object({
  siteId: z.string(),
  stage: z.enum(['fit', 'evaluate']),
  code: z.enum(['timeout', 'disconnected', 'site_error', 'invalid_reply']),
  reason: z.string(),
});
export const roundRecordSchema = z.object({
  round: z.number().int(),
  meanTrainLoss: z.number().nullable(),
  aggregated: z.boolean(),
  sites: z.array(
    z.object({
      siteId: z.string(),
      numExamples: z.number().nullable(),
      trainLoss: z.number().nullable(),
      fitMetrics: metrics,
      evalNumExamples: z.number().nullable(),
      evalMetrics: metrics.nullable(),
    }),
  ),
  failures: z.array(failure),
  evalMetrics: metrics.nullable(),
  fitMetrics: metrics,
  startedAt: z.string(),
  durationMs: z.number(),
  strategyError: z.string().nullable().optional(),
  secureAggregation: z
    .object({ included: z.array(z.string()), excluded: z.array(z.string()), totalExamples: z.number(), error: z.string().nullable() })
    .optional(),
});
