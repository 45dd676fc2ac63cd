/**
 * Strict schemas of the adaptation options a benchmark config may set (`adapt.common`, `adapt.methods.<method>`), so
 * that a mistyped option (`"lrr"`, `"selfTrainEpoch"`) is refused with the closest known name instead of silently
 * running the method with its default. The compile-time checks below fail when a method gains an option that is
 * missing here.
 */
import { z } from 'zod';
import { BiasCorrectionSchema } from '../../site-agent/adapt/index.ts';
import type { AdaBnOptions, GmmSwdOptions, InputAdapterOptions, MeanTeacherOptions, OsudaOptions, RatioEntropyOptions, StageOptions, TentOptions } from '../../site-agent/adapt/index.ts';

const positive = z.number().positive();
const positiveInt = z.number().int().positive();
const weight = z.number().min(0);
const fraction = z.number().min(0).max(1);

const shared = { lr: positive.optional(), epochs: positiveInt.optional(), batchSize: positiveInt.optional(), seed: z.number().int().optional() };

export const adabnOptionsSchema = z.object({ batchSize: positiveInt.optional() }).strict();
export const tentOptionsSchema = z.object(shared).strict();
export const osudaOptionsSchema = z
  .object({
    ...shared,
    eta0: fraction.optional(),
    decayT: positive.optional(),
    etaMin: fraction.optional(),
    hbsWeight: weight.optional(),
    entropyWeight: weight.optional(),
    selfTrainWeight: weight.optional(),
    pseudoLabelConfidence: fraction.optional(),
    memoryLength: positiveInt.optional(),
    scaleTransferability: z.boolean().optional(),
  })
  .strict();
export const gmmSwdOptionsSchema = z
  .object({
    ...shared,
    minPixels: positiveInt.optional(),
    ridge: weight.optional(),
    numProjections: positiveInt.optional(),
    swdWeight: weight.optional(),
    ceWeight: weight.optional(),
    samplesPerStep: positiveInt.optional(),
    priorMix: fraction.optional(),
    trainablePrefixes: z.array(z.string()).optional(),
    bnMode: z.enum(['running', 'batch']).optional(),
    restarts: positiveInt.optional(),
    restartSelection: z.enum(['swd', 'prior']).optional(),
    selfTrainEpochs: z.number().int().min(0).optional(),
    pseudoLabelWeight: weight.optional(),
    pseudoLabelKeep: fraction.optional(),
    pseudoLabelMemory: z.boolean().optional(),
    selfTrainPrefixes: z.array(z.string()).optional(),
    selfTrainLr: positive.optional(),
  })
  .strict();
export const meanTeacherOptionsSchema = z
  .object({
    ...shared,
    passes: positiveInt.optional(),
    dropout: fraction.optional(),
    uncertainty: weight.optional(),
    confidence: fraction.optional(),
    prototypeFilter: z.boolean().optional(),
    ema: fraction.optional(),
    classBalance: z.enum(['mean-loss', 'frequency', 'none']).optional(),
    augment: z
      .union([
        z.literal(false),
        z.object({ prob: fraction.optional(), gammaMax: positive.optional(), contrast: weight.optional(), noise: weight.optional(), saltPepper: fraction.optional(), erase: z.boolean().optional() }).strict(),
      ])
      .optional(),
    supervisedWeight: weight.optional(),
  })
  .strict();
export const ratioEntropyOptionsSchema = z
  .object({ ...shared, priorWeight: weight.optional(), params: z.enum(['all', 'bn']).optional(), classPrior: z.array(z.number().min(0)).optional() })
  .strict();
export const inputAdapterOptionsSchema = z
  .object({
    knots: positiveInt.optional(),
    steps: z.number().int().min(0).optional(),
    lr: positive.optional(),
    starts: z.array(z.enum(['identity', 'negation', 'random'])).optional(),
    randomStarts: z.number().int().min(0).optional(),
    screen: z.number().int().min(0).optional(),
    firstLayer: z.number().int().min(0).optional(),
    layers: positiveInt.optional(),
    entropyWeight: weight.optional(),
    priorWeight: weight.optional(),
    selection: z.enum(['objective', 'entropy-adabn']).optional(),
    wideSearch: z
      .object({ screen: positiveInt.optional(), starts: positiveInt.optional(), steps: z.number().int().min(0).optional(), pruneAt: z.number().int().min(0).optional(), keep: positiveInt.optional() })
      .strict()
      .optional(),
    bandPermutations: z
      .union([
        z.literal(false),
        z
          .object({ bands: z.number().int().min(2).max(8).optional(), maxPermutations: positiveInt.optional(), refine: positiveInt.optional(), steps: z.number().int().min(0).optional(), bandQuantiles: z.tuple([fraction, fraction]).optional(), bins: positiveInt.optional(), selection: z.enum(['guard', 'restart-agreement']).optional(), agreement: z.object({ restarts: positiveInt.optional(), sigma: z.number().positive().optional(), steps: positiveInt.optional() }).strict().optional() })
          .strict(),
      ])
      .optional(),
    denoise: z
      .union([z.literal(false), z.object({ sigmas: z.array(z.number().min(0)).min(1).optional(), margin: z.number().min(0).max(1).optional(), steps: z.number().int().min(0).optional(), firstLayer: z.number().int().min(0).optional(), layers: positiveInt.optional() }).strict()])
      .optional(),
    biasCorrection: z.union([z.literal(false), BiasCorrectionSchema.omit({ kind: true }).partial().strict()]).optional(),
    batchSize: positiveInt.optional(),
    seed: z.number().int().optional(),
  })
  .strict();
/** The stage before any method: the label-free input adapter (or its legacy spelling, the polarity check). */
const safeguardOptionsSchema = z
  .object({ priorKlTolerance: z.number().nonnegative().optional(), entropyTolerance: z.number().nonnegative().optional(), consistencyTolerance: z.number().nonnegative().optional(), rejectOnPriorKl: z.boolean().optional(), latentTolerance: z.number().nonnegative().optional(), vanishedBnKlRatio: z.number().nonnegative().optional() })
  .strict();
const stageShape = {
  inputAdapter: inputAdapterOptionsSchema.optional(),
  inputPolarities: z.array(z.union([z.literal(1), z.literal(-1)])).min(1).optional(),
  safeguard: z.union([z.boolean(), safeguardOptionsSchema]).optional(),
};

/** Options given to every method: any option some method understands, plus the input stage. */
export const commonAdaptOptionsSchema = z
  .object({ ...tentOptionsSchema.shape, ...osudaOptionsSchema.shape, ...gmmSwdOptionsSchema.shape, ...meanTeacherOptionsSchema.shape, ...ratioEntropyOptionsSchema.shape, ...stageShape })
  .strict();

export const methodAdaptOptionsSchema = z
  .object({
    adabn: adabnOptionsSchema.extend(stageShape).strict().optional(),
    tent: tentOptionsSchema.extend(stageShape).strict().optional(),
    osuda: osudaOptionsSchema.extend(stageShape).strict().optional(),
    'gmm-swd': gmmSwdOptionsSchema.extend(stageShape).strict().optional(),
    'mean-teacher': meanTeacherOptionsSchema.extend(stageShape).strict().optional(),
    'ratio-entropy': ratioEntropyOptionsSchema.extend(stageShape).strict().optional(),
  })
  .strict();

// Compile-time: every option of every method (but the progress callback) has a schema entry, with a compatible type.
type Missing<Options, Schema extends z.ZodType> = Exclude<keyof Options, keyof z.output<Schema> | 'onProgress'>;
type Check<M> = [M] extends [never] ? true : { missingOptions: M };
export const schemasCoverOptions: [
  Check<Missing<AdaBnOptions, typeof adabnOptionsSchema>>,
  Check<Missing<TentOptions, typeof tentOptionsSchema>>,
  Check<Missing<OsudaOptions, typeof osudaOptionsSchema>>,
  Check<Missing<GmmSwdOptions, typeof gmmSwdOptionsSchema>>,
  Check<Missing<MeanTeacherOptions, typeof meanTeacherOptionsSchema>>,
  Check<Missing<RatioEntropyOptions, typeof ratioEntropyOptionsSchema>>,
  Check<Missing<InputAdapterOptions, typeof inputAdapterOptionsSchema>>,
  // fittedAdapter and unadaptedScores are run-time results handed between stages, not config options.
  Check<Exclude<Missing<StageOptions, z.ZodObject<typeof stageShape>>, 'fittedAdapter' | 'unadaptedScores'>>,
] = [true, true, true, true, true, true, true, true];
const _typesCompatible: [
  z.output<typeof tentOptionsSchema> extends TentOptions ? true : false,
  z.output<typeof osudaOptionsSchema> extends OsudaOptions ? true : false,
  z.output<typeof gmmSwdOptionsSchema> extends GmmSwdOptions ? true : false,
  z.output<typeof meanTeacherOptionsSchema> extends MeanTeacherOptions ? true : false,
  z.output<typeof ratioEntropyOptionsSchema> extends RatioEntropyOptions ? true : false,
  z.output<typeof inputAdapterOptionsSchema> extends InputAdapterOptions ? true : false,
] = [true, true, true, true, true, true];
void _typesCompatible;
