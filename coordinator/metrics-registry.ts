/** A minimal Prometheus registry (text exposition format 0.0.4): counters and gauges with labels. */

type Labels = Record<string, string>;

function labelKey(labels: Labels): string {
  const keys = Object.keys(labels).sort();
  if (keys.length === 0) return '';
  const esc = (v: string): string => v.replace(/\\/g, '\\\\').replace(/\n/g, '\\n').replace(/"/g, '\\"');
  return `{${keys.map((k) => `${k}="${esc(labels[k])}"`).join(',')}}`;
}

class Metric {
  protected readonly values = new Map<string, number>();
  constructor(
    readonly name: string,
    readonly help: string,
    readonly type: 'counter' | 'gauge',
  ) {}
  render(): string {
    const lines = [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${this.type}`];
    for (const [k, v] of this.values) lines.push(`${this.name}${k} ${Number.isFinite(v) ? v : v > 0 ? '+Inf' : v < 0 ? '-Inf' : 'NaN'}`);
    return lines.join('\n');
  }
  get(labels: Labels = {}): number {
    return this.values.get(labelKey(labels)) ?? 0;
  }
}

export class Counter extends Metric {
  inc(labels: Labels = {}, by = 1): void {
    const k = labelKey(labels);
    this.values.set(k, (this.values.get(k) ?? 0) + by);
  }
  /** Set a total computed elsewhere; never moves backwards (counters are monotonic). */
  setTotal(labels: Labels, total: number): void {
    const k = labelKey(labels);
    this.values.set(k, Math.max(this.values.get(k) ?? 0, total));
  }
}

export class Gauge extends Metric {
  set(labels: Labels, value: number): void {
    this.values.set(labelKey(labels), value);
  }
}

export class MetricsRegistry {
  private readonly metrics: Metric[] = [];
  /** Runs before each render, to refresh values computed from live state (bytes of open sessions). */
  beforeRender: (() => void) | null = null;
  counter(name: string, help: string): Counter {
    const c = new Counter(name, help, 'counter');
    this.metrics.push(c);
    return c;
  }
  gauge(name: string, help: string): Gauge {
    const g = new Gauge(name, help, 'gauge');
    this.metrics.push(g);
    return g;
  }
  render(): string {
    this.beforeRender?.();
    return this.metrics.map((m) => m.render()).join('\n') + '\n';
  }
}

/** The coordinator's metrics, created together so names stay in one place. */
export function coordinatorMetrics(reg = new MetricsRegistry()) {
  return {
    registry: reg,
    connectedSites: reg.gauge('fedsfda_connected_sites', 'Sites with an authenticated session'),
    handshakes: reg.counter('fedsfda_handshakes_total', 'Handshakes by outcome'),
    rejected: reg.counter('fedsfda_rejected_envelopes_total', 'Envelopes or messages rejected, by protocol error code'),
    bytesIn: reg.counter('fedsfda_bytes_received_total', 'Sealed bytes received from sites'),
    bytesOut: reg.counter('fedsfda_bytes_sent_total', 'Sealed bytes sent to sites'),
    roundsCompleted: reg.counter('fedsfda_rounds_completed_total', 'Rounds completed (aggregated or not)'),
    currentRound: reg.gauge('fedsfda_current_round', 'Round in progress (or last completed)'),
    failures: reg.counter('fedsfda_site_failures_total', 'Per-site round failures by stage and code'),
    strategyFailures: reg.counter('fedsfda_strategy_failures_total', 'Rounds whose strategy threw while aggregating (global model kept)'),
    checkpointFailures: reg.counter('fedsfda_checkpoint_failures_total', 'Checkpoints that could not be written'),
    meanTrainLoss: reg.gauge('fedsfda_round_mean_train_loss', 'Example-weighted mean train loss of the last round'),
    evalMetric: reg.gauge('fedsfda_round_eval_metric', 'Aggregated evaluation metrics of the last round'),
    secureRounds: reg.counter('fedsfda_secure_rounds_total', 'Secure-aggregation fit stages by outcome (aggregated | aborted)'),
    secureExcluded: reg.counter('fedsfda_secure_excluded_sites_total', 'Sites left out of a secure sum (dropped out or refused)'),
    restUnauthorized: reg.counter('fedsfda_rest_unauthorized_total', 'REST requests refused for a missing or wrong bearer token'),
  };
}
export type CoordinatorMetrics = ReturnType<typeof coordinatorMetrics>;
