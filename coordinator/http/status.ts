/**
 * The JSON shape of `GET /status` and `GET /rounds` (zod: the dashboard imports these schemas and validates what it
 * fetches). Everything here is what the coordinator legitimately knows: connection facts, byte counts, the metrics
 * sites reported in the clear (under secure aggregation fit metrics are sums, per-site ones absent), the round
 * timeline with each failure's cause, and the secure-aggregation state. Never a model update.
 *
 * @example
 * const status = coordinatorStatusSchema.parse(await (await fetch(`${url}/status`, auth)).json());
 * for (const s of status.sites) console.log(s.siteId, s.connected, s.currentStage, s.bytesReceived);
 */
import { z } from 'zod';
import { roundRecordSchema } from '../../protocol/contracts/index.ts';
import type { PrivacyStatus } from '../strategies/index.ts';
import type { RunPrivacyReport } from '../../protocol/privacy/index.ts';

const metricsSchema = z.record(z.string(), z.number());

const failureSchema = z.object({
  siteId: z.string(),
  stage: z.enum(['fit', 'evaluate']),
  code: z.string(),
  reason: z.string(),
});

export const STAGES = ['idle', 'waiting_for_sites', 'fit', 'aggregate_fit', 'evaluate', 'aggregate_evaluate', 'checkpoint', 'after_rounds', 'finished', 'stopped'] as const;

/** One site as the coordinator sees it (enrolled sites appear even before their first connection). */
export const siteStatusSchema = z.object({
  siteId: z.string(),
  connected: z.boolean(),
  /** When the site last sent anything to this coordinator process (ISO time), null if never. */
  lastSeen: z.string().nullable(),
  /** The request the coordinator awaits from the site (`fit:3`, `evaluate:3`, `secagg:<session>:<stage>`, `stats:<session>`), or null. */
  currentStage: z.string().nullable(),
  /** Sealed bytes to and from the site over all its sessions with this process. */
  bytesSent: z.number(),
  bytesReceived: z.number(),
  /** Connections (sessions) this site opened with this process. */
  sessions: z.number().int(),
  /** Last round the site replied in, and what it reported (fit metrics are absent under secure aggregation). */
  lastRound: z.number().int().nullable(),
  lastFitMetrics: metricsSchema.nullable(),
  lastEvalMetrics: metricsSchema.nullable(),
  /** The last failure recorded for the site, with its round. */
  lastFailure: failureSchema.extend({ round: z.number().int() }).nullable(),
});
export type SiteStatus = z.infer<typeof siteStatusSchema>;

/** One round on the timeline: when, how long, whether it aggregated, and why not. */
export const timelineEntrySchema = z.object({
  round: z.number().int(),
  startedAt: z.string(),
  durationMs: z.number(),
  aggregated: z.boolean(),
  failures: z.array(failureSchema),
  strategyError: z.string().nullable(),
  secureAggregation: z.object({ included: z.array(z.string()), excluded: z.array(z.string()), error: z.string().nullable() }).nullable(),
});
export type TimelineEntry = z.infer<typeof timelineEntrySchema>;

/** What a SecAgg+ run is doing now (null between runs). */
export const secAggRunSchema = z.object({
  sessionId: z.string(),
  purpose: z.enum(['fit', 'statistics']),
  round: z.number().int(),
  stage: z.enum(['setup', 'share-keys', 'collect-masked-vectors', 'consistency-check', 'unmask']),
  participants: z.array(z.string()),
  /** Sites whose reply to the current stage arrived. */
  responded: z.array(z.string()),
  /** Sites dropped so far in this run. */
  dropped: z.array(z.string()),
  threshold: z.number().int(),
  degree: z.number().int(),
});
export type SecAggRunStatus = z.infer<typeof secAggRunSchema>;

export const secureAggregationStatusSchema = z.object({
  enabled: z.boolean(),
  /** The configured bound and clip (null when secure aggregation is off). */
  clip: z.number().nullable(),
  maxExamples: z.number().nullable(),
  current: secAggRunSchema.nullable(),
  runsCompleted: z.number().int(),
  runsAborted: z.number().int(),
  lastError: z.string().nullable(),
});

/** The per-site byte budget of the current round (coordinator/sites/byte-budget.ts). */
export const byteBudgetStatusSchema = z.object({
  perRoundBytes: z.number().int(),
  period: z.string(),
  sites: z.array(z.object({ siteId: z.string(), received: z.number().int(), refused: z.boolean() })),
});

export type ByteBudgetStatus = z.infer<typeof byteBudgetStatusSchema>;

export const runOutcomeSchema = z.object({ ok: z.boolean(), rounds: z.number().int(), aggregatedRounds: z.number().int(), reason: z.string().nullable() });

/** `GET /status` (without the `ok: true` envelope). */
export const coordinatorStatusSchema = z.object({
  stage: z.enum(STAGES),
  /** Round in progress, or the last one completed (0: before round 1 or evaluating the initial model). */
  round: z.number().int(),
  rounds: z.number().int(),
  minSites: z.number().int(),
  connectedSites: z.array(z.string()),
  strategy: z.string(),
  coordinatorKey: z.string(),
  startedAt: z.string(),
  sites: z.array(siteStatusSchema),
  /** The last TIMELINE_LENGTH rounds, oldest first (the full records: `GET /rounds`). */
  timeline: z.array(timelineEntrySchema),
  secureAggregation: secureAggregationStatusSchema,
  /** Set once the last round is over: whether the run trained. */
  outcome: runOutcomeSchema.nullable(),
  /** Differential privacy spent so far (epsilon, delta, per release) when the run is DP, else null (coordinator/strategies/dp-fedavg.ts). */
  privacy: z.custom<PrivacyStatus>((v) => typeof v === 'object' && v !== null).nullable(),
  /**
   * The run's whole ledger: training and shared-statistics releases composed in RDP (epsilon of each part and the
   * total), null when nothing is DP (protocol/privacy/dp-statistics.ts).
   */
  privacyLedger: z.custom<RunPrivacyReport>((v) => typeof v === 'object' && v !== null).nullable().optional(),
  /** Bytes each site sent this round against its per-round budget (limits.maxSiteBytesPerRound). */
  byteBudget: byteBudgetStatusSchema.optional(),
});
export type CoordinatorStatus = z.infer<typeof coordinatorStatusSchema>;

export const TIMELINE_LENGTH = 50;

/** `GET /rounds?offset=&limit=` (limit at most MAX_ROUNDS_PAGE; default everything up to it). */
export const MAX_ROUNDS_PAGE = 1000;
export const roundsPageQuerySchema = z.object({
  offset: z.coerce.number().int().min(0).default(0),
  limit: z.coerce.number().int().min(1).max(MAX_ROUNDS_PAGE).default(MAX_ROUNDS_PAGE),
});

/** `GET /rounds` (with the `ok: true` envelope). */
export const roundsPageSchema = z.object({
  ok: z.literal(true),
  rounds: z.array(roundRecordSchema),
  total: z.number().int(),
  offset: z.number().int(),
  limit: z.number().int(),
  nextOffset: z.number().int().nullable(),
});
