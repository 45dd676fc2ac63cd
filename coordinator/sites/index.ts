/** coordinator/sites/: the sites' connections (handshake, session, requests), who is connected, the request helper. */
export { SiteConnection, type ConnectionState, type ConnectionActivity, type SiteConnectionDeps } from './site-connection.ts';
export { SiteRequestError, requestKey, type SecAggWireStage } from './request-keys.ts';
export { SiteRegistry } from './site-registry.ts';
export { SiteByteBudget, ByteBudgetExceeded, defaultSiteBytesPerRound, BUDGET_MODELS_PER_ROUND, BUDGET_SLACK_BYTES, type ByteBudgetHooks } from './byte-budget.ts';
export { requestSite, deadlineIn, type SiteRequest } from './site-request.ts';
export { SiteGateway, type GatewayDeps, type SiteEvents } from './site-gateway.ts';
