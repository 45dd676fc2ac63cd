/**
 * Restart agreement: a label-free score for the input adapter's candidate curves that does not measure how typical of
 * the source the adapted target looks. Every score tried before (entropy, class-prior KL, consistency, the BN
 * objective, latent Mahalanobis distance) does, and none ranked the band orders of mricron reorder by Dice (BENCHMARKS.md,
 * session 8). This one asks instead whether the candidate is a stable solution of the fit:
 * 1. the candidate's curve values v are perturbed, v + σ·ε with ε ~ N(0, I) per knot value (z-score units), and
 *    re-fitted with the adapter's own objective and Adam steps, R times (its own Rng: other batches, other noise);
 * 2. the target is segmented after AdaBN through the candidate's curve and through each re-fit;
 * 3. the score is the mean over the R re-fits of the foreground Dice between the candidate's label map and the re-fit's
 *    (`labelAgreement`): 1 when every re-fit segments the target as the candidate does.
 * Premise: the disagreement between two runs of one training procedure that differ only in their randomness, measured
 * on unlabelled data, tracks their test error (Jiang, Nagarajan, Baek & Kolter, "Assessing Generalization of SGD via
 * Disagreement", ICLR 2022, sec. 3, eq. 1 and Thm. 4.2), and the stability of a solution under re-fitting is a
 * model-selection criterion where no labels exist (Lange, Roth, Braun & Buhmann, "Stability-based validation of
 * clustering solutions", Neural Computation 16(6), 2004, sec. 3). A curve in a narrow basin of the BN objective (a
 * wrong band order that the objective happens to score well) falls elsewhere when nudged; a wide one comes back.
 *
 * Cost per candidate: R x `steps` Adam steps (the adapter's batch), R + 1 AdaBN passes and R + 1 prediction passes over
 * the target.
 */
import type { Rng } from '../../protocol/common/index.ts';
import type { UNet } from '../model/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import { refine, type Resolved, type Targets } from './adapter-objective.ts';
import { predictLabels } from './batching.ts';
import { applyCurve, basisMatrix, makeCurve, type IntensityCurve } from './intensity-curve.ts';
import { labelAgreement } from './label-free-scores.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export interface RestartAgreementOptions {
  /** Perturbed re-fits per candidate. Default 3. */
  readonly restarts?: number;
  /** Standard deviation σ of the perturbation of every curve value (z-score units). Default 0.3. */
  readonly sigma?: number;
  /** Adam steps per re-fit. Default: the adapter's `steps`. */
  readonly steps?: number;
}

export function resolveRestartAgreement(a: RestartAgreementOptions, steps: number): Required<RestartAgreementOptions> {
  const r = { restarts: a.restarts ?? 3, sigma: a.sigma ?? 0.3, steps: a.steps ?? steps };
  if (!Number.isInteger(r.restarts) || r.restarts < 1) throw new AdaptError('BAD_OPTION', `restart agreement: restarts must be an integer >= 1, got ${r.restarts}`);
  if (!Number.isInteger(r.steps) || r.steps < 1) throw new AdaptError('BAD_OPTION', `restart agreement: steps must be an integer >= 1, got ${r.steps}`);
  if (!(r.sigma > 0) || !Number.isFinite(r.sigma)) throw new AdaptError('BAD_OPTION', `restart agreement: sigma must be > 0, got ${r.sigma}`);
  return r;
}

/** The target's label map after AdaBN on the target seen through `curve` (the model's weights are restored). */
export function labelsAfterAdaBn(unet: UNet, target: UnlabeledSlices, curve: IntensityCurve, batchSize: number): Uint8Array {
  const initial = unet.getWeights();
  try {
    const seen = applyCurve(curve, target);
    adaptAdaBN(unet, seen, { batchSize });
    return predictLabels(unet, seen, batchSize);
  } finally {
    unet.setWeights(initial);
  }
}

/**
 * The restart agreement of `curve` (see the file comment) and each re-fit's agreement. The model is left as given.
 * @example
 * restartAgreement(unet, target, t, o, candidate.curve, { restarts: 3, sigma: 0.3, steps: 40 }, new Rng(1)).agreement; // in [0, 1]
 */
export function restartAgreement(unet: UNet, target: UnlabeledSlices, t: Targets, o: Resolved, curve: IntensityCurve, a: Required<RestartAgreementOptions>, rng: Rng): { agreement: number; perRestart: number[] } {
  // The re-fits run on the curve's own knots over the raw target, as the adapter's searches do (before any pre-filter).
  if (curve.prefilter !== undefined || curve.biasCorrection !== undefined) throw new AdaptError('BAD_OPTION', 'restart agreement scores plain curves (no pre-filter, no bias-field correction)');
  const basis = basisMatrix(curve.knots, target.images);
  const own = labelsAfterAdaBn(unet, target, curve, o.batchSize);
  const perRestart = Array.from({ length: a.restarts }, () => {
    const start = curve.values.map((v) => v + a.sigma * rng.normal());
    const refit = makeCurve(curve.knots, refine(unet, target, basis, start, t, { ...o, steps: a.steps }, rng));
    return labelAgreement(own, labelsAfterAdaBn(unet, target, refit, o.batchSize), unet.config.numClasses);
  });
  return { agreement: perRestart.reduce((s, x) => s + x, 0) / perRestart.length, perRestart };
}
