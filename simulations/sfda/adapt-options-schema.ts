/**
 * Strict schemas of the adaptation options a benchmark config may set (`adapt.common`, `adapt.methods.<method>`), so
 * that a mistyped option (`"lrr"`, `"selfTrainEpoch"`) is refused with the closest known name instead of silently
 * running the method with its default. The compile-time checks below fail when a method gains an option that is
 * missing here.
 */
import { z } from 'zod';
import type { AdaBnOptions, GmmSwdOptions, OsudaOptions, PolarityOptions, TentOptions } from '../../site-agent/adapt/index.ts';

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
const polarityShape = { inputPolarities: z.array(z.union([z.literal(1), z.literal(-1)])).min(1).optional() };

/** Options given to every method: any option some method understands, plus the input polarity check. */
export const commonAdaptOptionsSchema = z
  .object({ ...tentOptionsSchema.shape, ...osudaOptionsSchema.shape, ...gmmSwdOptionsSchema.shape, ...polarityShape })
  .strict();

export const methodAdaptOptionsSchema = z
  .object({
    adabn: adabnOptionsSchema.extend(polarityShape).strict().optional(),
    tent: tentOptionsSchema.extend(polarityShape).strict().optional(),
    osuda: osudaOptionsSchema.extend(polarityShape).strict().optional(),
    'gmm-swd': gmmSwdOptionsSchema.extend(polarityShape).strict().optional(),
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
  Check<Missing<PolarityOptions, z.ZodObject<typeof polarityShape>>>,
] = [true, true, true, true, true];
const _typesCompatible: [
  z.output<typeof tentOptionsSchema> extends TentOptions ? true : false,
  z.output<typeof osudaOptionsSchema> extends OsudaOptions ? true : false,
  z.output<typeof gmmSwdOptionsSchema> extends GmmSwdOptions ? true : false,
] = [true, true, true];
void _typesCompatible;
