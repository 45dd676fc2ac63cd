/** coordinator/http/: the one port (engine.io + express), its limits, the REST app and the status it serves. */
export { createHttpApp, type HttpAppDeps } from './http-app.ts';
export { startServer, type CoordinatorServer, type ServerOptions } from './coordinator-server.ts';
export { ConnectionGate, ThrottledLog, addressKey, DEFAULT_CONNECTION_LIMITS, type ConnectionLimits, type RefusalReason } from './connection-limits.ts';
export { StatusTracker, type StatusBase } from './status-tracker.ts';
export {
  coordinatorStatusSchema,
  siteStatusSchema,
  timelineEntrySchema,
  secAggRunSchema,
  secureAggregationStatusSchema,
  runOutcomeSchema,
  roundsPageQuerySchema,
  roundsPageSchema,
  TIMELINE_LENGTH,
  MAX_ROUNDS_PAGE,
  STAGES,
  type CoordinatorStatus,
  type SiteStatus,
  type TimelineEntry,
  type SecAggRunStatus,
} from './status.ts';
