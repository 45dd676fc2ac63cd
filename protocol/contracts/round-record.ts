/**
 * What the coordinator records per round: the shape of `GET /rounds`, the handle's `history()`, checkpoints and the
 * simulation's summary. One schema; the TypeScript types are inferred from it, so the record and its validation
 * cannot drift apart.
 */
import { z } from 'zod';

const metricsSchema = z.record(z.string(), z.number());

/** Why a selected site did not contribute (`byte_budget`: it sent more than its per-round byte budget and was refused). */
export const FAILURE_CODES = ['timeout', 'disconnected', 'site_error', 'invalid_reply', 'byte_budget'] as const;
export type FailureCode = (typeof FAILURE_CODES)[number];

export const roundFailureSchema = z.object({
  siteId: z.string(),
  stage: z.enum(['fit', 'evaluate']),
  code: z.enum(FAILURE_CODES),
  reason: z.string(),
});
export type RoundFailure = Readonly<z.infer<typeof roundFailureSchema>>;

export const siteRoundRecordSchema = z.object({
  siteId: z.string(),
  /**
   * Examples the site trained on this round (0 if it did not fit successfully; null under secure aggregation,
   * where the coordinator only learns the total, in `RoundRecord.secureAggregation.totalExamples`).
   */
  numExamples: z.number().nullable(),
  /** The site's reported `trainLoss` metric, or null. */
  trainLoss: z.number().nullable(),
  fitMetrics: metricsSchema,
  evalNumExamples: z.number().nullable(),
  /** The site's evaluation metrics on the *aggregated* model of this round (protocol/contracts/metric-names.ts), or null. */
  evalMetrics: metricsSchema.nullable(),
});
export type SiteRoundRecord = z.infer<typeof siteRoundRecordSchema>;

export const roundRecordSchema = z.object({
  round: z.number().int(),
  /** Example-weighted mean of the sites' `trainLoss`, or null if no site reported one. */
  meanTrainLoss: z.number().nullable(),
  /** False when too few sites replied and the global model was kept. */
  aggregated: z.boolean(),
  sites: z.array(siteRoundRecordSchema),
  failures: z.array(roundFailureSchema),
  /** Strategy's aggregate of the evaluation metrics (example-weighted means by default). */
  evalMetrics: metricsSchema.nullable(),
  fitMetrics: metricsSchema,
  startedAt: z.string(),
  durationMs: z.number(),
  /** Why the strategy could not aggregate (it threw); absent or null when it did not fail. */
  strategyError: z.string().nullable().optional(),
  /** Present for secure-aggregation rounds: whose updates are in the sum, and the total example count. */
  secureAggregation: z
    .object({ included: z.array(z.string()), excluded: z.array(z.string()), totalExamples: z.number(), error: z.string().nullable() })
    .optional(),
});
export type RoundRecord = z.infer<typeof roundRecordSchema>;
