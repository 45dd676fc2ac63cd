/** site-agent/client/: the site's side of the wire (connect, handshake, serve rounds, reconnect). */
export {
  runSite,
  connectSocketIo,
  classifyConnectFailure,
  ConnectError,
  DEFAULT_MAX_ATTEMPTS,
  DEFAULT_GIVE_UP_AFTER_MS,
  type ConnectFailureCode,
  type RunSiteOptions,
  type SiteRunResult,
} from './run-site.ts';
export { SiteError, runSession, type SiteErrorCode, type SiteProgress, type SessionContext, type SessionOutcome, type CachedFit } from './site-session.ts';
export type { LocalTrainer, FitOutput, EvaluateOutput, FitConfig, EvalConfig, StatisticsRequest } from './local-trainer.ts';
export { SiteSecAggState, handleSecAggInstruction, handleStatisticsInstruction, type SecAggSiteContext } from './secure-middleware.ts';
export { backoffDelay, abortableDelay, type BackoffOptions } from './backoff.ts';
