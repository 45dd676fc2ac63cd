/**
 * One entry point for every source-free adaptation method. The target arrives as `UnlabeledSlices` (images only),
 * so no method can read target labels (the few-label mode, `adaptWithLabels`, takes its labelled subset explicitly).
 * Optional stages around the method:
 * - `inputAdapter`: a label-free intensity curve fitted in front of the frozen source model (input-adapter.ts); the
 *   method then runs on the target seen through the curve, and the report carries the curve (`inputCurve`): whoever
 *   predicts with the adapted model applies it to the images first (`applyCurve`). `inputPolarities: [1, -1]` is the
 *   session-2 polarity check, now the adapter's K = 2 special case (`POLARITY_CHECK`).
 */
import { getLogger } from '../../protocol/common/index.ts';
import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { adaptAdaBN, type AdaBnOptions } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptReport } from './adapt-report.ts';
import { adaptGmmSwd, type GmmSwdOptions } from './gmm-swd.ts';
import { curvePolarity, fitInputAdapter, negateFirstConv, POLARITY_CHECK, type InputAdapterResult, type InputAdapterOptions } from './input-adapter.ts';
import { applyCurve } from './intensity-curve.ts';
import { adaptMeanTeacher, type MeanTeacherOptions } from './mean-teacher.ts';
import { labelFreeScores, type LabelFreeScores } from './label-free-scores.ts';
import { adaptOsuda, type OsudaOptions } from './osuda.ts';
import { adaptRatioEntropy, type RatioEntropyOptions } from './ratio-entropy.ts';
import { fallbackNote, judgeAdaptation, SAFEGUARD_FALLBACK, type SafeguardOptions } from './safeguard.ts';
import { checkStatsMatchModel, type SourceStats } from './source-stats.ts';
import { adaptTent, type TentOptions } from './tent.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export const ADAPT_METHODS = ['adabn', 'tent', 'osuda', 'gmm-swd', 'mean-teacher', 'ratio-entropy'] as const;
export type AdaptMethod = (typeof ADAPT_METHODS)[number];

export interface StageOptions {
  /** Fit a label-free input intensity curve first (input-adapter.ts). Off when absent. */
  readonly inputAdapter?: InputAdapterOptions;
  /** Legacy spelling of the polarity check: [1, -1] = `inputAdapter: POLARITY_CHECK`. */
  readonly inputPolarities?: readonly number[];
  /**
   * An input curve fitted before on this target (e.g. by an earlier `fitInputAdapter` with the same options): used as
   * is instead of fitting again. Needs `inputAdapter` or `inputPolarities`, whose fit it stands for.
   */
  readonly fittedAdapter?: InputAdapterResult;
  /**
   * Do-no-harm safeguard (safeguard.ts): score the unadapted and the adapted model label-free on the target and fall
   * back to the unadapted model when the adaptation looks harmful (a note with the code, and one log record). ON when
   * absent; `false` turns it off. Costs three label-free passes over the target (about 3 inference passes each).
   */
  readonly safeguard?: boolean | SafeguardOptions;
  /**
   * The safeguard's "before": the label-free scores of the unadapted model on this target, with these source
   * statistics and this seed and no curve (`labelFreeScores(unet, target, sourceStats, undefined, seed)`), when the
   * caller has them already (the suite scores its source-only row so): used instead of scoring the same model again.
   */
  readonly unadaptedScores?: LabelFreeScores;
}

export type AdaptOptions = AdaBnOptions & TentOptions & OsudaOptions & GmmSwdOptions & MeanTeacherOptions & RatioEntropyOptions & StageOptions;

export function isAdaptMethod(s: string): s is AdaptMethod {
  return (ADAPT_METHODS as readonly string[]).includes(s);
}

/** The input-adapter options requested by `opts`, or null. */
export function requestedAdapter(opts: StageOptions): InputAdapterOptions | null {
  if (opts.inputAdapter !== undefined && opts.inputPolarities !== undefined) {
    throw new AdaptError('BAD_OPTION', 'give inputAdapter or inputPolarities, not both');
  }
  if (opts.inputAdapter !== undefined) return opts.inputAdapter;
  const p = opts.inputPolarities;
  if (p === undefined) return null;
  if (!Array.isArray(p) || p.length === 0 || p.some((v) => v !== 1 && v !== -1) || new Set(p).size !== p.length) {
    throw new AdaptError('BAD_OPTION', `inputPolarities must be a non-empty list of distinct 1 and -1, got ${JSON.stringify(p)}`);
  }
  if (p.length === 1) return p[0] === 1 ? null : { ...POLARITY_CHECK, starts: ['negation'] };
  return POLARITY_CHECK;
}

/**
 * Adapts `unet` in place to the unlabeled target images (after the optional input adapter, see the file comment).
 * @example
 * const report = adapt('mean-teacher', unet, toUnlabeled(targetSet), sourceStats, { seed: 1, inputAdapter: {} });
 * const seen = report.inputCurve ? applyCurve(report.inputCurve, images) : images; // then predict
 */
export function adapt(method: AdaptMethod, unet: UNet, target: UnlabeledSlices, sourceStats: SourceStats | null, opts: AdaptOptions = {}): AdaptReport {
  if (!isAdaptMethod(method)) throw new AdaptError('UNKNOWN_METHOD', `unknown adaptation method '${String(method)}'; use one of ${ADAPT_METHODS.join(', ')}`);
  if (sourceStats) checkStatsMatchModel(sourceStats, unet);
  if (opts.safeguard === false) return adaptUnguarded(method, unet, target, sourceStats, opts);
  const guard = opts.safeguard === undefined || opts.safeguard === true ? {} : opts.safeguard;
  const seed = opts.seed ?? 0;
  const start = unet.getWeights();
  const before = opts.unadaptedScores ?? labelFreeScores(unet, target, sourceStats, undefined, seed);
  const report = adaptUnguarded(method, unet, target, sourceStats, opts);
  // AdaBN only re-estimates statistics, which can move the deeper layers' input moments away from a source package
  // computed under miscalibrated running statistics (an untrained model: 0 -> 2.2 nats) without any harm: the
  // BN-distance test is for methods that change weights (safeguard.ts, FEATURES_FARTHER_FROM_SOURCE).
  const rule = method === 'adabn' ? { ...guard, bnKlTolerance: Infinity } : guard;
  const verdict = judgeAdaptation(before, labelFreeScores(unet, target, sourceStats, report.inputCurve, seed), rule);
  if (verdict.keep) return { ...report, notes: [...report.notes, `safeguard: kept (${verdict.reason})`], safeguard: verdict };
  unet.setWeights(start);
  getLogger().warn({ code: SAFEGUARD_FALLBACK, reason: verdict.code, method, detail: verdict.reason }, 'adaptation rejected by the do-no-harm safeguard; the unadapted model is kept');
  return { method: report.method, steps: report.steps, losses: report.losses, notes: [...report.notes, fallbackNote(verdict)], safeguard: verdict };
}

function adaptUnguarded(method: AdaptMethod, unet: UNet, target: UnlabeledSlices, sourceStats: SourceStats | null, opts: AdaptOptions): AdaptReport {
  const fit = adapterFit(unet, target, sourceStats, opts);
  if (fit === null) return runMethod(method, unet, target, sourceStats, opts);
  const polarity = curvePolarity(fit.curve);
  if (polarity !== null) {
    // A plain flip lives in the model itself: the first convolution negated, the target left as it is.
    if (polarity === -1) negateFirstConv(unet);
    const report = runMethod(method, unet, target, sourceStats, opts);
    return { ...report, notes: [polarityNote(fit, polarity), ...report.notes] };
  }
  const report = runMethod(method, unet, applyCurve(fit.curve, target), sourceStats, opts);
  return { ...report, notes: [fit.note, ...report.notes], inputCurve: fit.curve };
}

/** The input adapter's fit for these options (given, or fitted now), or null without an adapter. */
function adapterFit(unet: UNet, target: UnlabeledSlices, sourceStats: SourceStats | null, opts: AdaptOptions): InputAdapterResult | null {
  const adapter = requestedAdapter(opts);
  if (adapter === null) {
    if (opts.fittedAdapter !== undefined) throw new AdaptError('BAD_OPTION', 'fittedAdapter needs inputAdapter or inputPolarities (the fit it stands for)');
    return null;
  }
  return opts.fittedAdapter ?? fitInputAdapter(unet, target, sourceStats, { batchSize: opts.batchSize, seed: opts.seed, ...adapter });
}

function polarityNote(fit: InputAdapterResult, polarity: 1 | -1): string {
  return `input polarity ${polarity > 0 ? '+1' : '-1'} (${fit.note})`;
}

/**
 * Few-label mode: mean-teacher adaptation with the supervised loss on a labelled subset of the target (UA-MT style,
 * mean-teacher.ts), after the optional input adapter (fitted on all target images, labels unused).
 */
export function adaptWithLabels(unet: UNet, target: UnlabeledSlices, labelled: SliceDataset, sourceStats: SourceStats | null, opts: AdaptOptions = {}): AdaptReport {
  if (sourceStats) checkStatsMatchModel(sourceStats, unet);
  if (labelled.n < 1) throw new AdaptError('EMPTY_TARGET', 'few-label adaptation needs at least one labelled slice');
  const fit = adapterFit(unet, target, sourceStats, opts);
  if (fit === null) return adaptMeanTeacher(unet, target, opts, labelled);
  const polarity = curvePolarity(fit.curve);
  if (polarity !== null) {
    if (polarity === -1) negateFirstConv(unet);
    const report = adaptMeanTeacher(unet, target, opts, labelled);
    return { ...report, notes: [polarityNote(fit, polarity), ...report.notes] };
  }
  const seenLabelled = { ...labelled, images: applyCurve(fit.curve, labelled).images };
  const report = adaptMeanTeacher(unet, applyCurve(fit.curve, target), opts, seenLabelled);
  return { ...report, notes: [fit.note, ...report.notes], inputCurve: fit.curve };
}

/** Methods that re-estimate or align batch-norm statistics: undefined for the GroupNorm U-Net (DP-SGD's model). */
const BATCH_NORM_METHODS: readonly AdaptMethod[] = ['adabn', 'osuda'];

function runMethod(method: AdaptMethod, unet: UNet, target: UnlabeledSlices, sourceStats: SourceStats | null, opts: AdaptOptions): AdaptReport {
  if (unet.bnLayers.length === 0 && BATCH_NORM_METHODS.includes(method)) {
    throw new AdaptError(
      'NEEDS_BATCH_NORM',
      `${method} adapts batch-norm statistics, and this model has none (it uses group norm, as models trained with DP-SGD do): use tent, gmm-swd, mean-teacher or ratio-entropy`,
    );
  }
  switch (method) {
    case 'adabn':
      return adaptAdaBN(unet, target, opts);
    case 'tent':
      return adaptTent(unet, target, opts);
    case 'osuda':
      return adaptOsuda(unet, target, sourceStats, opts);
    case 'gmm-swd':
      if (!sourceStats) throw new AdaptError('GMM_UNAVAILABLE', 'gmm-swd needs the source statistics package (per-class latent Gaussians)');
      return adaptGmmSwd(unet, target, sourceStats, opts);
    case 'mean-teacher':
      return adaptMeanTeacher(unet, target, opts);
    case 'ratio-entropy':
      return adaptRatioEntropy(unet, target, sourceStats, opts);
    default: {
      const never: never = method;
      throw new AdaptError('UNKNOWN_METHOD', `unknown adaptation method '${String(never)}'; use one of ${ADAPT_METHODS.join(', ')}`);
    }
  }
}
