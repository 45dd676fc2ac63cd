/** simulations/runner/: the multi-process simulation (a coordinator and one process per site over loopback). */
export { runFederatedSimulation, SimulationError, type RunFederatedOptions } from './run-federated.ts';
export { runStrategyComparison, type StrategyComparison, type StrategyComparisonRow } from './compare-strategies.ts';
export { buildSummary, formatSummaryTable, type DiceSummary, type SimulationSummary, type SiteSummary } from './summary.ts';
export { coordinatorEventSchema, siteEventSchema, type CoordinatorEvent, type SiteEvent } from './child-events.ts';
