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
export { augmentInRound, roundData, trainFederatedSource, FederatedSourceError, type AugmentSchedule, type FederatedSourceConfig } from './federated-source.ts';
export { augmentDataset, augmentSlice, IntensityAugmentSchema, type IntensityAugmentOptions } from '../../site-agent/training/index.ts';
export { parseSfdaSuiteConfig, sfdaSuiteSchema, SfdaSuiteError, type SfdaSuiteConfig, type SuiteDataset, type SuiteFamily } from './suite-config.ts';
export { runSuiteDataset, suiteRows, checkSuiteFilters, SUITE_REFERENCES, SOURCE_ONLY, TARGET_SUPERVISED, CENTRALIZED_SOURCE, fewLabelRow, type CellRun, type DatasetResult, type SourceScore, type SuiteFilters, type SuiteReference } from './suite-run.ts';
export { formatSuiteDataset, summarizeFamilies, meanStd, type FamilySummary, type MeanStd } from './suite-table.ts';
export { runSfdaSuite, runSfdaSuiteFile, formatSuite, deepMerge, diskSourceCache, suiteFilterArgs, type SuiteResult } from './run-suite.ts';
export {
  runMultiTarget,
  runMultiTargetFile,
  formatMultiTarget,
  parseMultiTargetConfig,
  multiTargetSchema,
  MultiTargetError,
  type MultiTargetConfig,
  type MultiTargetResult,
  type MultiTargetHooks,
  type SiteOutcome,
} from './multi-target.ts';
export { benchmarkSiteData, concatSites, firstCases, type BenchmarkData } from './benchmark-site.ts';
