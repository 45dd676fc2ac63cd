/** The SFDA benchmark scenario (simulations/scenarios/sfda-benchmark.json), validated with zod. */
import { z } from 'zod';
import { ScannerShiftOrPresetSchema } from '../phantoms/index.ts';
import { ConfigError, validateConfig } from '../../protocol/common/index.ts';
import { commonAdaptOptionsSchema, methodAdaptOptionsSchema } from './adapt-options-schema.ts';
import { IntensityAugmentSchema } from '../../site-agent/training/index.ts';

const siteSchema = z.object({ shift: ScannerShiftOrPresetSchema, numCases: z.number().int().min(1).max(200) }).strict();

export const sfdaBenchmarkSchema = z
  .object({
    kind: z.literal('sfda-benchmark'),
    name: z.string().min(1),
    seeds: z.array(z.number().int()).min(1).max(20),
    data: z
      .object({
        /**
         * `phantom` (default): generated phantoms. `mricron`: real T1 anatomy from Debian's mricron-data (ch2 + AAL
         * regions grouped into 4 classes), one randomly warped slab per case, seen through each site's scanner.
         */
        anatomy: z.enum(['phantom', 'mricron']).default('phantom'),
        size: z.number().int().min(8).max(256),
        numClasses: z.number().int().min(2).max(8),
        slicesPerCase: z.number().int().min(1).max(128),
        sourceSites: z.array(siteSchema).min(1).max(16),
        /** Unlabeled target cases used for adaptation, and separate labelled target cases used only for scoring. */
        target: z.object({ shift: ScannerShiftOrPresetSchema, adaptCases: z.number().int().min(1), testCases: z.number().int().min(1) }).strict(),
      })
      .strict(),
    model: z.object({ baseChannels: z.number().int().min(2).max(64), depth: z.number().int().min(1).max(4) }).strict(),
    federated: z
      .object({
        rounds: z.number().int().min(1).max(200),
        localEpochs: z.number().int().min(1).max(50),
        batchSize: z.number().int().min(1).max(64),
        lr: z.number().positive(),
        /** Target-agnostic source intensity augmentation (no contrast inversion); off when absent. */
        augment: IntensityAugmentSchema.optional(),
      })
      .strict(),
    /**
     * Upper bound: the same network trained from scratch with target labels — on the (then labelled) adaptation cases,
     * or, with `numCases`, on that many separately drawn labelled target cases (e.g. as many as the whole source
     * federation has, so that the bound is not weaker than the source model for lack of data).
     */
    targetSupervised: z
      .object({ epochs: z.number().int().min(1).max(500), lr: z.number().positive(), numCases: z.number().int().min(1).max(200).optional() })
      .strict(),
    /** Options passed to every adaptation method, then per-method overrides. */
    adapt: z
      .object({
        batchSize: z.number().int().min(1).max(64),
        common: commonAdaptOptionsSchema.default({}),
        methods: methodAdaptOptionsSchema.default({}),
      })
      .strict(),
  })
  .strict();

export type SfdaBenchmarkConfig = z.infer<typeof sfdaBenchmarkSchema>;

export class SfdaBenchmarkError extends Error {
  readonly code = 'BAD_BENCHMARK_CONFIG' as const;
  constructor(message: string) {
    super(message);
    this.name = 'SfdaBenchmarkError';
  }
}

/** Validates a benchmark config (strict: unknown keys and options are errors); `text` adds line and column. */
export function parseSfdaBenchmarkConfig(raw: unknown, where = 'sfda benchmark config', text?: string): SfdaBenchmarkConfig {
  try {
    return validateConfig(sfdaBenchmarkSchema, raw, where, text);
  } catch (e) {
    if (e instanceof ConfigError) throw new SfdaBenchmarkError(e.message);
    throw e;
  }
}
