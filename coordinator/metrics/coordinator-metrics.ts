/**
 * The coordinator's Prometheus metrics (prom-client, text exposition format 0.0.4 at `GET /metrics`): one registry
 * per coordinator (tests run several in one process), Node's default process metrics (RSS, heap, event-loop lag,
 * open handles), counters of every refusal and failure, and histograms of round and stage durations.
 *
 * @example
 * const m = coordinatorMetrics();
 * m.failures.inc({ stage: 'fit', code: 'timeout' });
 * const text = await m.registry.metrics();
 */
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/** Bucket bounds (seconds) for round and stage durations: a toy round takes milliseconds, a U-Net round minutes. */
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600];

/** A counter whose value is a total computed elsewhere at scrape time (bytes of open and closed sessions). */
function totalCounter(registry: Registry, name: string, help: string, total: () => number): Counter {
  let reported = 0;
  return new Counter({
    name,
    help,
    registers: [registry],
    collect() {
      const now = total();
      if (now > reported) {
        this.inc(now - reported);
        reported = now;
      }
    },
  });
}

export interface MetricSources {
  /** Sealed bytes received from / sent to sites so far (closed and open sessions). */
  bytesReceived(): number;
  bytesSent(): number;
}

/** The coordinator's metrics, created together so names stay in one place. */
export function coordinatorMetrics(sources: MetricSources = { bytesReceived: () => 0, bytesSent: () => 0 }) {
  const registry = new Registry();
  collectDefaultMetrics({ register: registry });
  const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Counter<L>({ name, help, labelNames, registers: [registry] });
  const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) => new Gauge<L>({ name, help, labelNames, registers: [registry] });
  return {
    registry,
    connectedSites: gauge('fedsfda_connected_sites', 'Sites with an authenticated session'),
    handshakes: counter('fedsfda_handshakes_total', 'Handshakes by outcome', ['outcome']),
    rejected: counter('fedsfda_rejected_envelopes_total', 'Envelopes or messages rejected, by protocol error code', ['code']),
    limitRefusals: counter(
      'fedsfda_limit_refusals_total',
      'Refusals by a resource limit: connection_cap, address_cap (unauthenticated per address), transfer_expired (abandoned partial upload freed), byte_budget (a site over its per-round bytes)',
      ['reason'],
    ),
    survivedErrors: counter('fedsfda_connection_errors_survived_total', 'Uncaught connection-scoped errors the process survived, by error code', ['code']),
    bytesIn: totalCounter(registry, 'fedsfda_bytes_received_total', 'Sealed bytes received from sites', sources.bytesReceived),
    bytesOut: totalCounter(registry, 'fedsfda_bytes_sent_total', 'Sealed bytes sent to sites', sources.bytesSent),
    roundsCompleted: counter('fedsfda_rounds_completed_total', 'Rounds completed (aggregated or not)'),
    currentRound: gauge('fedsfda_current_round', 'Round in progress (or last completed)'),
    failures: counter('fedsfda_site_failures_total', 'Per-site round failures by stage and code', ['stage', 'code']),
    strategyFailures: counter('fedsfda_strategy_failures_total', 'Rounds whose strategy threw while aggregating (global model kept)'),
    checkpointFailures: counter('fedsfda_checkpoint_failures_total', 'Checkpoints that could not be written'),
    meanTrainLoss: gauge('fedsfda_round_mean_train_loss', 'Example-weighted mean train loss of the last round'),
    evalMetric: gauge('fedsfda_round_eval_metric', 'Aggregated evaluation metrics of the last round', ['metric']),
    secureRounds: counter('fedsfda_secure_rounds_total', 'Secure-aggregation fit stages by outcome (aggregated | aborted)', ['outcome']),
    secureExcluded: counter('fedsfda_secure_excluded_sites_total', 'Sites left out of a secure sum (dropped out or refused)'),
    restUnauthorized: counter('fedsfda_rest_unauthorized_total', 'REST requests refused for a missing or wrong bearer token'),
    roundDuration: new Histogram({ name: 'fedsfda_round_duration_seconds', help: 'Wall time of each round', buckets: DURATION_BUCKETS, registers: [registry] }),
    stageDuration: new Histogram<'stage'>({
      name: 'fedsfda_stage_duration_seconds',
      help: 'Wall time of each round stage (fit, aggregate_fit, evaluate, aggregate_evaluate, checkpoint, ...)',
      labelNames: ['stage'],
      buckets: DURATION_BUCKETS,
      registers: [registry],
    }),
  };
}
export type CoordinatorMetrics = ReturnType<typeof coordinatorMetrics>;

/** One sample's value (tests and the status page): the sum over series matching `labels`, 0 when absent. */
export async function metricValue(metric: Counter | Gauge, labels: Record<string, string> = {}): Promise<number> {
  const { values } = await metric.get();
  return values.filter((v) => Object.entries(labels).every(([k, l]) => v.labels[k] === l)).reduce((s, v) => s + v.value, 0);
}
