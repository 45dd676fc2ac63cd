/**
 * Do-no-harm safeguard (issue 12, item 4): a label-free verdict on an adaptation, comparing the unadapted model's
 * label-free scores on the target (label-free-scores.ts) with the adapted model's, and falling back to the unadapted
 * model when the adaptation looks harmful. Rejected when either
 * - the predicted class proportions moved away from the source class priors by more than `priorKlTolerance` (KL, nats):
 *   the anatomy's proportions do not change with the scanner, so this is a collapse or a class swap (Bateson et al.,
 *   MedIA 2022, the class-ratio prior), or
 * - the predictions got less certain (mean entropy up by more than `entropyTolerance`, relative; TENT's premise, Wang et
 *   al. ICLR 2021) AND less stable under a mild acquisition perturbation (consistency down by more than
 *   `consistencyTolerance`), unless the class proportions came clearly closer to the priors. Entropy alone is not
 *   used: an unadapted model on a contrast-inverted target is confidently wrong (entropy near 0), and any real
 *   adaptation raises its entropy.
 * The tolerances are round numbers chosen before the suite was measured, not tuned on it.
 */
import type { LabelFreeScores } from './label-free-scores.ts';

export interface SafeguardOptions {
  /** Allowed rise of KL(source priors || predicted proportions), nats. Default 0.01. */
  readonly priorKlTolerance?: number;
  /** Allowed relative rise of the mean prediction entropy. Default 0.05. */
  readonly entropyTolerance?: number;
  /** Allowed drop of the perturbation consistency (Dice overlap, 0-1). Default 0.02. */
  readonly consistencyTolerance?: number;
}

export interface SafeguardVerdict {
  readonly keep: boolean;
  /** Why, in one line (numbers before -> after). */
  readonly reason: string;
  readonly before: LabelFreeScores;
  readonly after: LabelFreeScores;
}

/** Keep the adaptation (`after`) or fall back to the unadapted model (`before`)? */
export function judgeAdaptation(before: LabelFreeScores, after: LabelFreeScores, opts: SafeguardOptions = {}): SafeguardVerdict {
  const klTol = opts.priorKlTolerance ?? 0.01;
  const entTol = opts.entropyTolerance ?? 0.05;
  const conTol = opts.consistencyTolerance ?? 0.02;
  const kl = `prior KL ${before.priorKl.toFixed(4)} -> ${after.priorKl.toFixed(4)}`;
  const ent = `entropy ${before.entropy.toFixed(4)} -> ${after.entropy.toFixed(4)}`;
  const con = `consistency ${before.consistency.toFixed(3)} -> ${after.consistency.toFixed(3)}`;
  // A NaN prior KL (no source statistics) never rejects; the entropy/consistency test still applies.
  if (after.priorKl > before.priorKl + klTol) return { keep: false, reason: `class proportions moved away from the source priors (${kl})`, before, after };
  // Class proportions that came clearly closer to the priors vouch for the adaptation: a source model that collapses
  // on the target (one class everywhere) is certain and trivially stable, so entropy and consistency both "worsen".
  const closerToPriors = after.priorKl < before.priorKl - klTol;
  const lessCertain = after.entropy > before.entropy * (1 + entTol) + 1e-6;
  const lessStable = after.consistency < before.consistency - conTol;
  if (!closerToPriors && lessCertain && lessStable) return { keep: false, reason: `less certain and less stable (${ent}, ${con})`, before, after };
  return { keep: true, reason: `${kl}, ${ent}, ${con}`, before, after };
}
