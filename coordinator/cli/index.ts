/** coordinator/cli/: the server side's commands, its config file, and the process guards of a coordinator process. */
export { registerCoordinatorCommands } from './cli.ts';
export { startCoordinatorFromFiles, type CoordinatorCommandOptions } from './start-from-files.ts';
export { coordinatorConfigSchema, loadCoordinatorConfig, type CoordinatorConfig } from './coordinator-config.ts';
export { secureAggregationConfigSchema } from './secure-aggregation-schema.ts';
export { installProcessGuards, isConnectionScoped, EXIT_INTERNAL_ERROR, type ProcessGuardOptions } from './process-guard.ts';
