/**
 * From an RDP curve to (epsilon, delta)-DP, and the orders it is evaluated on.
 *
 * Conversion: Balle, Barthe, Gaboardi, Hsu, Sato, "Hypothesis Testing Interpretations and Renyi Differential
 * Privacy", AISTATS 2020 (arXiv 1905.09982), Theorem 21: an (alpha, r)-RDP mechanism is (epsilon, delta)-DP with
 *   epsilon = r + log((alpha - 1) / alpha) - (log(delta) + log(alpha)) / (alpha - 1),
 * minimised over the orders evaluated; computed exactly as Opacus `get_privacy_spent`
 * (opacus/accountants/analysis/rdp.py): NaN entries are skipped, all-NaN means no privacy (Infinity).
 */
import { PrivacyError } from './privacy-error.ts';

/**
 * Opacus `RDPAccountant.DEFAULT_ALPHAS`: 1.1, 1.2, ..., 10.9 (as 1 + x/10, so 2.0 ... 10.0 are integers and take
 * the exact binomial path), then 12, 13, ..., 63.
 */
export const DEFAULT_ORDERS: readonly number[] = Object.freeze([
  ...Array.from({ length: 99 }, (_, k) => 1 + (k + 1) / 10),
  ...Array.from({ length: 52 }, (_, k) => 12 + k),
]);

export interface PrivacySpent {
  /** Infinity when no order gives a finite bound (e.g. noise multiplier 0). */
  readonly epsilon: number;
  /** The order alpha at which the minimum is reached. */
  readonly order: number;
  /** True when the optimum sits at the first or last order: a wider order range could give a tighter epsilon. */
  readonly orderAtBoundary: boolean;
}

export function checkDelta(delta: number): void {
  if (!(delta > 0 && delta < 1)) throw new PrivacyError('bad-argument', `delta must be in (0, 1), got ${delta}`);
}

/** Balle et al. 2020, Thm 21, minimised over `orders` (Opacus `get_privacy_spent`). */
export function epsilonFromRdp(orders: readonly number[], rdp: readonly number[], delta: number): PrivacySpent {
  checkDelta(delta);
  if (orders.length === 0) throw new PrivacyError('bad-argument', 'no RDP orders given');
  if (orders.length !== rdp.length) {
    throw new PrivacyError('bad-argument', `orders (${orders.length}) and RDP values (${rdp.length}) differ in length`);
  }
  let best = -1;
  let bestEps = NaN;
  for (let k = 0; k < orders.length; k++) {
    const a = orders[k];
    if (!(a > 1)) throw new PrivacyError('bad-argument', `RDP order must be > 1, got ${a}`);
    const eps = rdp[k] - (Math.log(delta) + Math.log(a)) / (a - 1) + Math.log((a - 1) / a);
    if (Number.isNaN(eps)) continue;
    if (best < 0 || eps < bestEps) {
      best = k;
      bestEps = eps;
    }
  }
  if (best < 0) return { epsilon: Infinity, order: NaN, orderAtBoundary: false };
  return { epsilon: bestEps, order: orders[best], orderAtBoundary: best === 0 || best === orders.length - 1 };
}
