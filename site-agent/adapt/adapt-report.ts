import type { IntensityCurve } from './intensity-curve.ts';
import type { SafeguardVerdict } from './safeguard.ts';

/** What every adaptation method returns besides mutating the model in place. */
export interface AdaptReport {
  readonly method: string;
  /** Optimisation (or statistics) steps taken. */
  readonly steps: number;
  /** Loss per optimisation step (empty for AdaBN). */
  readonly losses: number[];
  /** Anything the caller should know (fallbacks, skipped parts). */
  readonly notes: string[];
  /**
   * The input adapter's intensity curve, when one was fitted and it is not a plain polarity flip (a flip is folded into
   * the first convolution): the adapted model expects images seen through it (`applyCurve`).
   */
  readonly inputCurve?: IntensityCurve;
  /** The do-no-harm safeguard's verdict, when it ran (`safeguard` option); a rejected adaptation left the model unadapted. */
  readonly safeguard?: SafeguardVerdict;
}

/** Progress callback: step index (1-based), total steps, loss of this step (NaN when none). */
export type AdaptProgress = (step: number, total: number, loss: number) => void;
