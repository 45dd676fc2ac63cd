/**
 * One entry point for every source-free adaptation method. The target arrives as `UnlabeledSlices` (images only),
 * so no method can read target labels.
 */
import type { UNet } from '../model/index.ts';
import { adaptAdaBN, type AdaBnOptions } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import type { AdaptReport } from './adapt-report.ts';
import { adaptGmmSwd, type GmmSwdOptions } from './gmm-swd.ts';
import { chooseInputPolarity, type PolarityOptions } from './input-polarity.ts';
import { adaptOsuda, type OsudaOptions } from './osuda.ts';
import { checkStatsMatchModel, type SourceStats } from './source-stats.ts';
import { adaptTent, type TentOptions } from './tent.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';

export const ADAPT_METHODS = ['adabn', 'tent', 'osuda', 'gmm-swd'] as const;
export type AdaptMethod = (typeof ADAPT_METHODS)[number];

export type AdaptOptions = AdaBnOptions & TentOptions & OsudaOptions & GmmSwdOptions & PolarityOptions;

export function isAdaptMethod(s: string): s is AdaptMethod {
  return (ADAPT_METHODS as readonly string[]).includes(s);
}

/**
 * Adapts `unet` in place to the unlabeled target images. With `inputPolarities` (e.g. [1, -1]) a label-free polarity
 * check runs first (input-polarity.ts) and the method starts from the chosen polarity; the report's notes say which.
 * @example
 * const report = adapt('osuda', unet, toUnlabeled(targetSet), sourceStats, { seed: 1 });
 */
export function adapt(
  method: AdaptMethod,
  unet: UNet,
  target: UnlabeledSlices,
  sourceStats: SourceStats | null,
  opts: AdaptOptions = {},
): AdaptReport {
  if (sourceStats) checkStatsMatchModel(sourceStats, unet);
  if (opts.inputPolarities !== undefined && opts.inputPolarities.length > 1) {
    const choice = chooseInputPolarity(unet, target, opts.inputPolarities, opts.batchSize);
    const report = runMethod(method, unet, target, sourceStats, opts);
    const per = opts.inputPolarities.map((p, i) => `${p > 0 ? '+1' : '-1'}: ${choice.entropies[i].toFixed(4)}`).join(', ');
    return { ...report, notes: [`input polarity ${choice.polarity > 0 ? '+1' : '-1'} (mean target entropy after AdaBN ${per})`, ...report.notes] };
  }
  return runMethod(method, unet, target, sourceStats, opts);
}

function runMethod(method: AdaptMethod, unet: UNet, target: UnlabeledSlices, sourceStats: SourceStats | null, opts: AdaptOptions): AdaptReport {
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
    default: {
      const never: never = method;
      throw new AdaptError('UNKNOWN_METHOD', `unknown adaptation method '${String(never)}'; use one of ${ADAPT_METHODS.join(', ')}`);
    }
  }
}
