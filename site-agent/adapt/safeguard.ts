/**
 * Do-no-harm safeguard (issue 12, item 4): a label-free verdict on an adaptation, comparing the unadapted model's
 * label-free scores on the target (label-free-scores.ts) with the adapted model's, and falling back to the unadapted
 * model when the adaptation looks harmful. On by default in `adapt` (adapt.ts; `safeguard: false` turns it off).
 * Rejected (code `FEATURES_FARTHER_FROM_SOURCE`) when the source-BN-statistics distance (label-free-scores.ts `bnKl`: per
 * BN layer, the Gaussian KL of the target's feature moments to the source package's, averaged over layers) rose by more
 * than `bnKlTolerance` nats: AdaBN, OSUDA and the input adapter all work by bringing the target's feature statistics to
 * the source's (Li et al. ICLR-W 2017; FSM, Yang et al. MedIA 2022, sec. 3.1; DeepInversion, Yin et al. CVPR 2020,
 * eq. 4), so an adaptation that pushes them away has left the regime the frozen layers were trained for (a TENT run
 * with a huge step: 0.001 -> 300 nats on the toy shift). 0.1 nats is a round number well above every rise seen on the
 * tuning seeds (at most +0.005; the unadapted model's own distance there is 0.02-0.35).
 * Rejected (code `CLASS_VANISHED`) when a class the anatomy has (source prior >= 1%) is predicted in less than a tenth
 * of its prior share after adaptation but was not before: the anatomy's classes do not disappear with the scanner
 * (the weakest form of the class-ratio prior, Bateson et al., MedIA 2022); this is the collapse entropy minimisation
 * is known for (TENT with a large step; Wang et al., ICLR 2021, sec. 4 discuss its failure under large rates).
 * Not when the adaptation brought the target's features to a fraction (`vanishedBnKlRatio`, default 1/4) of the
 * unadapted model's distance to the source BN statistics: then the unadapted model was out of the regime its layers were
 * trained for, and its class shares are no evidence that the class is in these images (a collapse by entropy
 * minimisation does not bring the features closer to the source's; FSM, Yang et al. MedIA 2022, sec. 3.1). Found on
 * mricron inversion, tuning seed 108 (session 12): the unadapted model predicted class 3 (prior 0.037) in 1.7% of
 * the pixels, every adapted row in at most 0.1%, with the mean BN KL 0.0466 -> 0.005; the rule threw away Dice 0.854
 * (adapter + AdaBN; polarity + AdaBN 0.862) for the unadapted model's 0.013 (the target's slices do not show class 3:
 * Dice 0.854 with the class unpredicted).
 * Rejected (code `LESS_CERTAIN_AND_LESS_STABLE`) when the predictions got less certain (mean entropy up by more than
 * `entropyTolerance`, relative; TENT's premise that lower entropy goes with lower error, Wang et al. ICLR 2021, sec. 3)
 * AND less stable under a mild acquisition perturbation (consistency down by more than `consistencyTolerance`; the
 * augmentation-consistency premise of mean-teacher methods, Tarvainen & Valpola NeurIPS 2017), unless the class
 * proportions came clearly closer to the source priors (Bateson et al., MedIA 2022, the class-ratio prior: a source
 * model that collapses on the target is certain and trivially stable, so entropy and consistency both "worsen" when it
 * recovers). Entropy alone is not used: an unadapted model on a contrast-inverted target is confidently wrong (entropy
 * near 0), and any real adaptation raises its entropy.
 *
 * A rise of the prior KL alone (code `FARTHER_FROM_PRIORS`) rejects only when asked (`rejectOnPriorKl`): on the suite's
 * tuning seeds (101-103; BENCHMARKS.md, session 6) the predicted proportions of a 4-volume target moved
 * away from the pooled source priors by more than 0.01 on adaptations that lifted Dice from 0 to 0.85 (mricron
 * inversion) and by 0.17 on reorder / gamma, so as a default it gave back the gains it should protect.
 * The tolerances are round numbers chosen before the suite was measured, not tuned on it.
 *
 * Opt-in (`latentTolerance`, code `FEATURES_UNTYPICAL_OF_CLASS`): reject when the latent-feature distance to the source
 * Gaussian of the predicted class (label-free-scores.ts `latent`, latent-typicality.ts; Lee et al. NeurIPS 2018, eq. 2)
 * rose by more than that fraction, averaged over predicted classes. Off by default because it does not separate on
 * the tuning seeds (session 8, 101-103, the five tuning families, both datasets, 240 rows; BENCHMARKS.md, "Session 8"):
 * helpful adaptations move the features away from the source class Gaussians as often as harmful ones (AdaBN
 * re-normalises every layer), so a tolerance of 1.0 (+100%) rejected 2 of 4 harmful rows (-0.016 Dice each) and 16
 * of 212 helpful ones, 0.1 rejected 92 helpful ones, and the user-path harm (0.425 -> 0.383) rose by only +13%.
 */
import type { LabelFreeScores } from './label-free-scores.ts';
import { classMean, formatTypicality } from './latent-typicality.ts';

export interface SafeguardOptions {
  /** Allowed rise of the mean source-BN-statistics distance (nats). Default 0.1. */
  readonly bnKlTolerance?: number;
  /**
   * `CLASS_VANISHED` does not apply when the adapted model's mean source-BN-statistics distance is at most this fraction
   * of the unadapted model's (see the file comment). Default 0.25; 0 keeps the rule always on, and so does a missing
   * distance (no source statistics: NaN).
   */
  readonly vanishedBnKlRatio?: number;
  /** Allowed relative rise of the mean prediction entropy. Default 0.05. */
  readonly entropyTolerance?: number;
  /** Allowed drop of the perturbation consistency (Dice overlap, 0-1). Default 0.02. */
  readonly consistencyTolerance?: number;
  /** Margin of KL(source priors || predicted proportions), nats, for "clearly closer" (and for the rise below). Default 0.01. */
  readonly priorKlTolerance?: number;
  /** Also reject when the prior KL rose by more than `priorKlTolerance`. Default false (see the file comment). */
  readonly rejectOnPriorKl?: boolean;
  /**
   * Allowed relative rise of the latent-feature distance to the source class Gaussians (label-free-scores.ts `latent`,
   * mean over predicted classes of the mean d²/d; latent-typicality.ts). Default Infinity: off (see the file comment).
   */
  readonly latentTolerance?: number;
}

/** Why an adaptation was rejected: a closed set, carried in the verdict, the report's note and the log record. */
export type SafeguardCode = 'FEATURES_FARTHER_FROM_SOURCE' | 'CLASS_VANISHED' | 'LESS_CERTAIN_AND_LESS_STABLE' | 'FARTHER_FROM_PRIORS' | 'FEATURES_UNTYPICAL_OF_CLASS';

/** The log record code of a fallback (`getLogger().warn({ code: SAFEGUARD_FALLBACK, ... })`). */
export const SAFEGUARD_FALLBACK = 'ADAPT_SAFEGUARD_FALLBACK';

/** Every fallback's note in an `AdaptReport` starts with this (the suite counts fallbacks by it). */
export const SAFEGUARD_FALLBACK_NOTE = 'safeguard: fell back to the unadapted model';

export interface SafeguardVerdict {
  readonly keep: boolean;
  /** Set when rejected. */
  readonly code?: SafeguardCode;
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
  const bnBefore = meanBnKl(before);
  const bnAfter = meanBnKl(after);
  const bnText = `mean BN KL ${bnBefore.toFixed(4)} -> ${bnAfter.toFixed(4)} nats`;
  if (bnAfter > bnBefore + (opts.bnKlTolerance ?? 0.1)) {
    return { keep: false, code: 'FEATURES_FARTHER_FROM_SOURCE', reason: `the target's features moved away from the source BN statistics (${bnText})`, before, after };
  }
  const gone = vanishedClasses(before, after);
  const backInRegime = bnAfter <= bnBefore * (opts.vanishedBnKlRatio ?? 0.25);
  if (gone.length > 0 && !backInRegime) {
    const priors = (after.priors ?? before.priors)!;
    const shares = gone.map((c) => `class ${c}: prior ${priors[c].toFixed(3)}, predicted ${before.proportions![c].toFixed(3)} -> ${after.proportions![c].toFixed(4)}`);
    return { keep: false, code: 'CLASS_VANISHED', reason: `a class vanished from the predictions (${shares.join('; ')}; ${bnText})`, before, after };
  }
  // Absent latent scores (no source statistics, or no class with a Gaussian) give NaN: never rejects.
  const latBefore = classMean(before.latent?.meanDistance);
  const latAfter = classMean(after.latent?.meanDistance);
  if (latAfter > latBefore * (1 + (opts.latentTolerance ?? Infinity))) {
    return { keep: false, code: 'FEATURES_UNTYPICAL_OF_CLASS', reason: `the features became less typical of their predicted source classes (latent distance ${latBefore.toFixed(3)} -> ${latAfter.toFixed(3)})`, before, after };
  }
  // A NaN prior KL (no source statistics) never rejects and never vouches; the entropy/consistency test still applies.
  if (opts.rejectOnPriorKl && after.priorKl > before.priorKl + klTol) {
    return { keep: false, code: 'FARTHER_FROM_PRIORS', reason: `class proportions moved away from the source priors (${kl})`, before, after };
  }
  const closerToPriors = after.priorKl < before.priorKl - klTol;
  const lessCertain = after.entropy > before.entropy * (1 + entTol) + 1e-6;
  const lessStable = after.consistency < before.consistency - conTol;
  if (!closerToPriors && lessCertain && lessStable) return { keep: false, code: 'LESS_CERTAIN_AND_LESS_STABLE', reason: `less certain and less stable (${ent}, ${con}; ${kl})`, before, after };
  const lat = before.latent && after.latent ? `, ${formatTypicality(before.latent, before.proportions)} -> ${formatTypicality(after.latent, after.proportions).slice('latent: '.length)}` : '';
  const vanished = gone.length > 0 ? `; class ${gone.join(', ')} no longer predicted, not judged: the features came back to the source statistics (${bnText})` : '';
  return { keep: true, reason: `${kl}, ${ent}, ${con}${lat}${vanished}`, before, after };
}

/** Mean over BN layers of `bnKl` (NaN when absent: then the test never rejects). */
export function meanBnKl(s: LabelFreeScores): number {
  const v = (s.bnKl ?? []).filter(Number.isFinite);
  return v.length === 0 ? NaN : v.reduce((a, b) => a + b, 0) / v.length;
}

/** Classes with source prior >= 1% predicted in >= a tenth of their prior share before and < a tenth after (none without priors). */
export function vanishedClasses(before: LabelFreeScores, after: LabelFreeScores): number[] {
  const priors = after.priors ?? before.priors;
  if (!priors || !before.proportions || !after.proportions) return [];
  return classesVanished(priors, before.proportions, after.proportions);
}

/** The classes with source prior >= 1% predicted in at least a tenth of their prior share `before` and less `after`. */
export function classesVanished(priors: readonly number[], before: readonly number[], after: readonly number[]): number[] {
  const out: number[] = [];
  priors.forEach((p, c) => {
    if (p >= 0.01 && before[c] >= p / 10 && after[c] < p / 10) out.push(c);
  });
  return out;
}

/** The note a report carries for a rejected adaptation: `safeguard: fell back to the unadapted model [CODE]: reason`. */
export function fallbackNote(v: SafeguardVerdict): string {
  return `${SAFEGUARD_FALLBACK_NOTE} [${v.code ?? 'LESS_CERTAIN_AND_LESS_STABLE'}]: ${v.reason}`;
}
