/** coordinator/rounds/: the round state machine, the round record, and the judgement of a run before and after. */
export { RoundRunner, encodeModel, DEFAULT_RELEASE_AFTER_RESTART_MS, type RoundTimeouts, type RoundEvents, type RoundRunnerOptions } from './round-runner.ts';
export { checkTransition, type Stage } from './stages.ts';
export { roundRecordSchema, type RoundRecord, type SiteRoundRecord } from './round-record.ts';
export { buildRoundRecord, type RoundFacts } from './record-builder.ts';
export { checkRunPlan, judgeRun, MIN_SECURE_SITES, DEFAULT_MIN_AGGREGATED_FRACTION, type RunPlan, type RunOutcome } from './run-checks.ts';
