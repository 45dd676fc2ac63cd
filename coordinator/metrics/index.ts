/** coordinator/metrics/: the Prometheus registry (prom-client) and its metrics. */
export { coordinatorMetrics, metricValue, type CoordinatorMetrics, type MetricSources } from './coordinator-metrics.ts';
