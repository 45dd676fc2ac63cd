/**
 * A privacy ledger: every noisy release a run makes, composed in RDP and converted to (epsilon, delta) once.
 *
 * RDP composes additively over mechanisms at each order (Mironov, "Rényi Differential Privacy", CSF 2017, Prop. 1),
 * so heterogeneous releases (DP-FedAvg rounds, DP statistics, DP-SGD steps) add up curve by curve; the conversion
 * (epsilon.ts) happens after the sum, which is what makes RDP accounting tight.
 * Like Opacus `RDPAccountant.step`, consecutive identical events are merged into one entry with a step count.
 */
import { computeRdp } from './rdp.ts';
import { ddgRdp } from './distributed-noise.ts';
import { DEFAULT_ORDERS, epsilonFromRdp, type PrivacySpent } from './epsilon.ts';
import { PrivacyError } from './privacy-error.ts';

/** The sampled Gaussian mechanism on an L2-sensitivity-1 query: noise std = noiseMultiplier x sensitivity. */
export interface SampledGaussianEvent {
  readonly mechanism: 'sampled-gaussian';
  /** What was released, e.g. `dp-fedavg`, `stats/source-stats`, `dp-sgd`. */
  readonly label: string;
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
}

/**
 * A mechanism satisfying rho-zCDP per step (RDP alpha * rho at every order; Bun & Steinke, TCC 2016, Def. 1.1).
 * Used for the sum of per-site discrete Gaussians (Kairouz, Liu, Steinke, ICML 2021, Thm. 1 / Cor. 1).
 */
export interface ZcdpEvent {
  readonly mechanism: 'zcdp';
  readonly label: string;
  readonly rho: number;
  readonly steps: number;
}

/**
 * One release of a secure sum carrying every surviving site's discrete Gaussian share (distributed-noise.ts;
 * Kairouz, Liu, Steinke, ICML 2021, Prop. 14). Sensitivities and sigma in the integer (quantized) domain.
 */
export interface DistributedDiscreteGaussianEvent {
  readonly mechanism: 'distributed-discrete-gaussian';
  readonly label: string;
  readonly l2Sensitivity: number;
  readonly l1Sensitivity: number;
  readonly siteSigma: number;
  readonly survivors: number;
  readonly dim: number;
  readonly steps: number;
}

export type PrivacyEvent = SampledGaussianEvent | ZcdpEvent | DistributedDiscreteGaussianEvent;

function checkEvent(e: PrivacyEvent): void {
  if (!Number.isInteger(e.steps) || e.steps < 0) throw new PrivacyError('bad-argument', `${e.label}: steps must be an integer >= 0, got ${e.steps}`);
  switch (e.mechanism) {
    case 'sampled-gaussian':
      if (!(e.samplingRate >= 0 && e.samplingRate <= 1)) throw new PrivacyError('bad-argument', `${e.label}: sampling rate must be in [0, 1], got ${e.samplingRate}`);
      if (!(e.noiseMultiplier >= 0) || !Number.isFinite(e.noiseMultiplier)) {
        throw new PrivacyError('bad-argument', `${e.label}: noise multiplier must be a finite number >= 0, got ${e.noiseMultiplier}`);
      }
      return;
    case 'zcdp':
      if (!(e.rho >= 0)) throw new PrivacyError('bad-argument', `${e.label}: rho must be >= 0, got ${e.rho}`);
      return;
    case 'distributed-discrete-gaussian':
      if (!(e.l2Sensitivity > 0 && e.l1Sensitivity > 0 && e.siteSigma >= 0 && Number.isInteger(e.survivors) && e.survivors >= 0 && Number.isInteger(e.dim) && e.dim >= 1)) {
        throw new PrivacyError('bad-argument', `${e.label}: invalid distributed discrete Gaussian parameters`);
      }
      return;
    default: {
      const never: never = e;
      throw new PrivacyError('bad-argument', `unknown mechanism ${JSON.stringify(never)}`);
    }
  }
}

/** RDP curve of one event over `orders` (already multiplied by its step count). */
export function eventRdp(e: PrivacyEvent, orders: readonly number[]): number[] {
  checkEvent(e);
  switch (e.mechanism) {
    case 'sampled-gaussian':
      return computeRdp(e.samplingRate, e.noiseMultiplier, e.steps, orders);
    case 'zcdp':
      return orders.map((a) => (e.steps === 0 ? 0 : a * e.rho * e.steps));
    case 'distributed-discrete-gaussian':
      return orders.map((a) => (e.steps === 0 ? 0 : ddgRdp(e, a) * e.steps));
    default: {
      const never: never = e;
      throw new PrivacyError('bad-argument', `unknown mechanism ${JSON.stringify(never)}`);
    }
  }
}

function sameMechanism(a: PrivacyEvent, b: PrivacyEvent): boolean {
  if (a.label !== b.label) return false;
  if (a.mechanism === 'sampled-gaussian' && b.mechanism === 'sampled-gaussian') {
    return a.samplingRate === b.samplingRate && a.noiseMultiplier === b.noiseMultiplier;
  }
  if (a.mechanism === 'zcdp' && b.mechanism === 'zcdp') return a.rho === b.rho;
  if (a.mechanism === 'distributed-discrete-gaussian' && b.mechanism === 'distributed-discrete-gaussian') {
    return a.l2Sensitivity === b.l2Sensitivity && a.l1Sensitivity === b.l1Sensitivity && a.siteSigma === b.siteSigma && a.survivors === b.survivors && a.dim === b.dim;
  }
  return false;
}

export interface LedgerReport extends PrivacySpent {
  readonly delta: number;
  /** epsilon each label would have spent on its own (the total is smaller than their sum: RDP composes first). */
  readonly byLabel: Readonly<Record<string, number>>;
  readonly events: readonly PrivacyEvent[];
}

export class PrivacyLedger {
  private readonly entries: PrivacyEvent[] = [];

  constructor(readonly orders: readonly number[] = DEFAULT_ORDERS) {
    if (orders.length === 0) throw new PrivacyError('bad-argument', 'a ledger needs at least one RDP order');
  }

  /** Records `event` (merged into the last entry when it is the same mechanism and label). */
  record(event: PrivacyEvent): void {
    checkEvent(event);
    const last = this.entries.at(-1);
    if (last && sameMechanism(last, event)) {
      this.entries[this.entries.length - 1] = { ...last, steps: last.steps + event.steps };
    } else {
      this.entries.push({ ...event });
    }
  }

  get events(): readonly PrivacyEvent[] {
    return this.entries;
  }

  /** Total RDP at each order. */
  rdp(): number[] {
    return PrivacyLedger.sumRdp(this.entries, this.orders);
  }

  /** (epsilon, delta) of everything recorded so far; epsilon 0 for an empty ledger. */
  spent(delta: number): PrivacySpent {
    if (this.entries.length === 0) {
      epsilonFromRdp(this.orders, this.orders.map(() => 0), delta); // validates delta
      return { epsilon: 0, order: NaN, orderAtBoundary: false };
    }
    return epsilonFromRdp(this.orders, this.rdp(), delta);
  }

  report(delta: number): LedgerReport {
    const byLabel: Record<string, number> = {};
    for (const label of new Set(this.entries.map((e) => e.label))) {
      const own = this.entries.filter((e) => e.label === label);
      byLabel[label] = epsilonFromRdp(this.orders, PrivacyLedger.sumRdp(own, this.orders), delta).epsilon;
    }
    return { ...this.spent(delta), delta, byLabel, events: this.entries.map((e) => ({ ...e })) };
  }

  /** A ledger holding the same events (to ask "what if" without touching this one). */
  clone(): PrivacyLedger {
    const copy = new PrivacyLedger(this.orders);
    for (const e of this.entries) copy.entries.push({ ...e });
    return copy;
  }

  static sumRdp(events: readonly PrivacyEvent[], orders: readonly number[]): number[] {
    const total = orders.map(() => 0);
    for (const e of events) {
      const r = eventRdp(e, orders);
      for (let k = 0; k < total.length; k++) total[k] += r[k];
    }
    return total;
  }
}
