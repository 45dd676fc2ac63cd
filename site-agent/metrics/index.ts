export { MetricsError } from './errors.ts';
export type { MetricsErrorCode } from './errors.ts';
export { squaredDistanceTransform } from './distance-transform.ts';
export { maskSurface } from './surface.ts';
export { computeMetrics, binaryMetrics, percentileSorted } from './segmentation-metrics.ts';
export type { CaseMetrics, ClassMetrics, MetricsOptions } from './segmentation-metrics.ts';
export { aggregateCases, summarize } from './aggregate.ts';
export type { AggregateResult, MetricSummary, MetricsSummary } from './aggregate.ts';
