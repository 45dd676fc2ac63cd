/** site-agent/client/: the site's side of the wire (connect, handshake, serve rounds through one fit path, reconnect). */
export { runSite, DEFAULT_MAX_ATTEMPTS, DEFAULT_GIVE_UP_AFTER_MS, type RunSiteOptions, type SiteRunResult } from './run-site.ts';
export { connectSocketIo, classifyConnectFailure, ConnectError, type ConnectFailureCode } from './connect.ts';
export { SiteError, runSession, type SiteErrorCode, type SiteProgress, type SessionContext, type SessionOutcome } from './site-session.ts';
export type { LocalTrainer, FitOutput, EvaluateOutput, FitConfig, EvalConfig, StatisticsRequest } from './local-trainer.ts';
export { composeFit, trainOnce, finiteMetrics, type FitHandler, type FitMod, type TrainedFit, type FitCacheEntry } from './fit-path.ts';
export { SiteSecAggState, handleSecAggInstruction, type SecAggSiteContext } from './secagg-mod.ts';
export { handleStatisticsInstruction, type StatisticsContext } from './statistics-handler.ts';
export { PeerKeys, PeerKeyError } from './peer-keys.ts';
export { backoffDelay, abortableDelay, type BackoffOptions } from './backoff.ts';
export { UNetTrainer, type UNetTrainerOptions, type FitRequest, type FitOutcome, type EvaluateOutcome } from './unet-trainer.ts';
export { asLocalTrainer } from './as-local-trainer.ts';
