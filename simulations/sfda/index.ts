export {
  runSfdaBenchmark,
  runSfdaBenchmarkFile,
  formatMethodsTable,
  BENCHMARK_METHODS,
  type BenchmarkMethod,
  type MethodRun,
  type MethodSummary,
  type SfdaBenchmarkResult,
  type BenchmarkHooks,
} from './run-benchmark.ts';
export { parseSfdaBenchmarkConfig, sfdaBenchmarkSchema, SfdaBenchmarkError, type SfdaBenchmarkConfig } from './benchmark-config.ts';
export { trainFederatedSource, FederatedSourceError, type FederatedSourceConfig } from './federated-source.ts';
export { augmentDataset, augmentSlice, IntensityAugmentSchema, type IntensityAugmentOptions } from './intensity-augment.ts';
