/**
 * epsilon of a sampled Gaussian run, and the inverse: the smallest noise multiplier reaching a target epsilon.
 *
 * Calibration follows Opacus `get_noise_multiplier` (opacus/accountants/utils.py): epsilon falls monotonically as
 * the noise multiplier grows, so double an upper bracket until it meets the target, then bisect; the returned
 * multiplier is always on the safe side (its epsilon <= target). We bisect to a relative width of 1e-9 instead of
 * Opacus's absolute epsilon tolerance of 0.01, so the result does not depend on the scale of epsilon.
 */
import { computeRdp } from './rdp.ts';
import { DEFAULT_ORDERS, checkDelta, epsilonFromRdp, type PrivacySpent } from './epsilon.ts';
import { PrivacyError } from './privacy-error.ts';

export interface SampledGaussianRun {
  readonly samplingRate: number;
  readonly noiseMultiplier: number;
  readonly steps: number;
  readonly delta: number;
  readonly orders?: readonly number[];
}

/** (epsilon, delta) of `steps` compositions of the sampled Gaussian mechanism. */
export function sampledGaussianEpsilon(run: SampledGaussianRun): PrivacySpent {
  const orders = run.orders ?? DEFAULT_ORDERS;
  return epsilonFromRdp(orders, computeRdp(run.samplingRate, run.noiseMultiplier, run.steps, orders), run.delta);
}

export interface CalibrationTarget {
  readonly samplingRate: number;
  readonly steps: number;
  readonly delta: number;
  readonly epsilon: number;
  readonly orders?: readonly number[];
  /** Stop bisecting once the bracket is narrower than this fraction of the multiplier (default 1e-9). */
  readonly relativeTolerance?: number;
}

/** Above this Opacus gives up ("The privacy budget is too low"). */
export const MAX_NOISE_MULTIPLIER = 1e6;

export interface Calibration {
  readonly noiseMultiplier: number;
  /** The epsilon the returned multiplier actually gives (<= the target). */
  readonly epsilon: number;
  readonly order: number;
}

/** The smallest noise multiplier (within tolerance) whose epsilon is <= `target.epsilon`. */
export function calibrateNoiseMultiplier(target: CalibrationTarget): Calibration {
  const { samplingRate: q, steps, delta, epsilon } = target;
  checkDelta(delta);
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new PrivacyError('bad-argument', `target epsilon must be a finite number > 0, got ${epsilon}`);
  if (!(q > 0 && q <= 1)) throw new PrivacyError('bad-argument', `sampling rate must be in (0, 1], got ${q}`);
  if (!Number.isInteger(steps) || steps < 1) throw new PrivacyError('bad-argument', `steps must be an integer >= 1, got ${steps}`);
  const tol = target.relativeTolerance ?? 1e-9;
  const eps = (z: number): PrivacySpent => sampledGaussianEpsilon({ samplingRate: q, noiseMultiplier: z, steps, delta, orders: target.orders });
  let low = 0;
  let high = 1;
  let best = eps(high);
  while (best.epsilon > epsilon) {
    low = high;
    high *= 2;
    if (high > MAX_NOISE_MULTIPLIER) {
      throw new PrivacyError('unreachable-target', `no noise multiplier up to ${MAX_NOISE_MULTIPLIER} reaches epsilon ${epsilon} at delta ${delta} over ${steps} steps with q=${q}`);
    }
    best = eps(high);
  }
  while (high - low > tol * high) {
    const mid = (low + high) / 2;
    const at = eps(mid);
    if (at.epsilon <= epsilon) {
      high = mid;
      best = at;
    } else {
      low = mid;
    }
  }
  return { noiseMultiplier: high, epsilon: best.epsilon, order: best.order };
}
