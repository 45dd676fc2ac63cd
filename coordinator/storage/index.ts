/** coordinator/storage/: what the coordinator keeps on disk — checkpoints (resume) and the run folder (results). */
export { CheckpointStore, CheckpointError, type Checkpoint, type CheckpointUpdate } from './checkpoint-store.ts';
export {
  writeRunArtifacts,
  completedRun,
  runStatisticsSchema,
  runManifestSchema,
  FINAL_WEIGHTS_FILE,
  SOURCE_STATS_FILE,
  CLASS_HISTOGRAM_FILE,
  HISTORY_FILE,
  RUN_MANIFEST_FILE,
  PRIVACY_FILE,
  PRIVACY_LEDGER_FILE,
  checkStatisticsBudget,
  type RunManifest,
  type RunStatistics,
  type ArtifactReport,
  type ArtifactSource,
} from './run-artifacts.ts';
