/**
 * The `sfda-multi-target` scenario file (multi-target.ts runs it): its zod schema, strict at every level so that a
 * mistyped or misplaced option is refused with a typed error naming it instead of being silently ignored.
 */
import { z } from 'zod';
import { describeFirstIssue } from '../../protocol/common/index.ts';
import { ScannerShiftOrPresetSchema } from '../phantoms/index.ts';
import { IntensityAugmentSchema } from '../../site-agent/training/index.ts';
import { inputAdapterOptionsSchema, meanTeacherOptionsSchema } from './adapt-options-schema.ts';

/** The joint site's options, strict (a mistyped or misplaced option is refused instead of silently ignored). */
const jointSiteOptionsSchema = meanTeacherOptionsSchema
  .extend({
    /** The local method; 'adabn' trains nothing (the sites share their BN moments only, with `share.bnMoments`). */
    method: z.enum(['mean-teacher', 'ratio-entropy', 'adabn']).optional(),
    ratioEntropy: z.object({ lr: z.number().positive().optional(), priorWeight: z.number().min(0).optional() }).strict().optional(),
    classPrior: z.enum(['source', 'pooled']).optional(),
    /**
     * adabn only: α_s of α-BN, the source statistics' weight in the site's (adabn-session.ts). Off in the mricron
     * scenario: on tuning seeds 101-103 (bnOwnWeight 0.25) α_s 0.1 / 0.2 / 0.3 raised alone 0.724 -> 0.729 / 0.731 /
     * 0.732 but lowered joint 0.756 -> 0.753 / 0.749 / 0.744 (the pooled statistics are less noisy than one case's).
     */
    sourceBnWeight: z.number().min(0).lt(1).optional(),
    inputAdapter: inputAdapterOptionsSchema.optional(),
  })
  .strict()
  .superRefine((o, ctx) => {
    if (o.method === 'adabn') {
      for (const k of ['lr', 'epochs', 'ema', 'passes', 'dropout', 'uncertainty', 'confidence', 'prototypeFilter', 'classBalance', 'augment', 'supervisedWeight', 'ratioEntropy', 'classPrior'] as const) {
        if (o[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `"${k}" is an option of a trained method; adabn trains nothing` });
      }
      return;
    }
    if (o.sourceBnWeight !== undefined) ctx.addIssue({ code: 'custom', path: ['sourceBnWeight'], message: '"sourceBnWeight" is an adabn option' });
    // The mean teacher's own options mean nothing to ratio-entropy (its learning rate is ratioEntropy.lr).
    if (o.method !== 'ratio-entropy') return;
    for (const k of ['lr', 'epochs', 'ema', 'passes', 'dropout', 'uncertainty', 'confidence', 'prototypeFilter', 'classBalance', 'augment', 'supervisedWeight'] as const) {
      if (o[k] !== undefined) ctx.addIssue({ code: 'custom', path: [k], message: `"${k}" is a mean-teacher option; ratio-entropy takes ratioEntropy.{lr, priorWeight}` });
    }
  });

export const multiTargetSchema = z
  .object({
    kind: z.literal('sfda-multi-target'),
    name: z.string().min(1),
    seeds: z.array(z.number().int()).min(1).max(20),
    data: z
      .object({
        anatomy: z.enum(['phantom', 'mricron']),
        size: z.number().int().min(8).max(256),
        numClasses: z.number().int().min(2).max(8),
        slicesPerCase: z.number().int().min(1).max(128),
        sourceSites: z.array(z.object({ shift: ScannerShiftOrPresetSchema, numCases: z.number().int().min(1).max(200) }).strict()).min(1),
        targets: z
          .array(z.object({ id: z.string().regex(/^[a-z0-9][a-z0-9-]{0,31}$/), shift: ScannerShiftOrPresetSchema, adaptCases: z.number().int().min(1), testCases: z.number().int().min(1) }).strict())
          .min(3)
          .max(16),
      })
      .strict(),
    model: z.object({ baseChannels: z.number().int().min(2).max(64), depth: z.number().int().min(1).max(4) }).strict(),
    federated: z
      .object({
        rounds: z.number().int().min(1),
        localEpochs: z.number().int().min(1),
        batchSize: z.number().int().min(1),
        lr: z.number().positive(),
        /**
         * Source-side intensity augmentation (intensity-augment.ts; a fresh augmented copy of every source site per
         * round), as the suite's `datasets[].sourceAugment`; off when absent. The source statistics stay those of the
         * plain slices.
         */
        augment: IntensityAugmentSchema.optional(),
      })
      .strict(),
    adapt: z
      .object({
        /** Rounds = local epochs of the method (none with adabn: its rounds do nothing). */
        rounds: z.number().int().min(1).max(100),
        batchSize: z.number().int().min(1).max(64),
        options: jointSiteOptionsSchema.default({}),
        /** What the federated mode shares (ablations; default everything). */
        share: z
          .object({
            prototypes: z.boolean().default(true),
            classRatio: z.boolean().default(true),
            weights: z.boolean().default(true),
            /**
             * Tensor-name prefixes kept local besides BN (FedPer, Arivazhagan et al. 2019 / LG-FedAvg, Liang et al.
             * 2020: scanner-specific layers stay at the site), e.g. ["enc1."] for the first encoder block.
             */
            localPrefixes: z.array(z.string().min(1)).default([]),
            /**
             * θ of the local-global mixing step after every weight average: each site's shared tensors become
             * θ · own + (1 - θ) · average (L2GD's aggregation step, Hanzely & Richtárik, "Federated learning of a mixture
             * of global and local models", 2020, Alg. 1; APFL's personalised mixture, Deng et al. 2020). 0 (default):
             * plain FedBN, every site takes the average; → 1: adapting alone.
             */
            personal: z.number().min(0).max(1).default(0),
            /**
             * Fit the input curve on all sites' slices (multi-target-pooled.ts: FedSGD through secure sums, the curve in
             * each site's own quantile space); each site takes it unless its own objective under the pooled curve is
             * worse than under its own curve by more than `tolerance` (relative). For sites with the same kind of scanner.
             */
            inputCurve: z.boolean().default(false),
            /** Pooled target BN statistics (AdaBN over the union of the slices) for the sites that took the pooled curve (all sites without `inputCurve`). */
            bnMoments: z.boolean().default(false),
            /** The sites' label-free curve rule: pooled taken when L_own(pooled) <= (1 + tolerance) L_own(own). */
            tolerance: z.number().min(0).default(2),
            /**
             * Local Adam steps each site refines the pooled curve with on its own objective before the rule (warm start).
             * Off (0): on tuning seeds 101-103 the refined curve had a lower objective than the site's own at most sites
             * and lower Dice (scanner-d-like sites: joint - alone -0.006 and -0.009 mean, one site -0.058).
             */
            refine: z.number().int().min(0).max(200).default(0),
            /**
             * A site that took the pooled curve (within `tolerance`) but refused the pooled statistics (beyond
             * `entropyTolerance`) keeps the result of adapting alone instead of its half-pooled one. Without
             * `inputCurve` (every site on its own curve) and with `bnMoments`: a site that refuses the pooled statistics
             * keeps its alone result (FedBN-averaged weights included), i.e. each site chooses whole package or alone.
             */
            keepAlone: z.boolean().default(false),
            /**
             * The BN check: pooled statistics kept only when the site's mean prediction entropy rose by at most this
             * (relative); null: a site that took the pooled curve takes the pooled statistics. Default 0.1, chosen on
             * tuning seeds 101-103: without the check the heterogeneous scenario's low-field site took statistics pooled
             * with scanner-c/d and lost 0.2 Dice on seed 102 (entropy +13%); at 0.05 (safeguard.ts's default) low-field
             * same-model sites refused pooled statistics that raised Dice (entropy +6-10%). Negative: the pooled
             * statistics must lower the site's entropy by at least that much (relative), e.g. -0.05 = by 5%.
             */
            entropyTolerance: z.number().gt(-1).nullable().default(0.1),
            /**
             * With `bnMoments`: the weight α of the site's own target in the statistics it checks and takes, the
             * moments of α · own + (1 - α) · pooled (joint-bn-moments.ts `mixBnMomentSums`; a shrinkage of one case's
             * statistics towards the federation's). 0 (default): the pooled statistics as they are; 1 would be its own.
             */
            bnOwnWeight: z.number().min(0).lt(1).default(0),
          })
          .strict()
          .default({ prototypes: true, classRatio: true, weights: true, localPrefixes: [], personal: 0, inputCurve: false, bnMoments: false, tolerance: 2, refine: 0, keepAlone: false, entropyTolerance: 0.1, bnOwnWeight: 0 }),
      })
      .strict()
      .superRefine((a, ctx) => {
        if (a.options.method === 'adabn' && a.share.weights) {
          ctx.addIssue({ code: 'custom', path: ['share', 'weights'], message: 'adabn trains nothing, so there are no weights to average: set share.weights to false' });
        }
        if (a.share.bnOwnWeight > 0 && !a.share.bnMoments) {
          ctx.addIssue({ code: 'custom', path: ['share', 'bnOwnWeight'], message: 'share.bnOwnWeight mixes pooled BN moments: it needs share.bnMoments' });
        }
        // The pooled fit averages the sites' restarts start by start; band-order starts depend on each site's own
        // intensity bands (band-permutation.ts), so start i would mean a different curve at every site.
        const bands = a.options.inputAdapter?.bandPermutations;
        if (a.share.inputCurve && bands !== undefined && bands !== false) {
          ctx.addIssue({ code: 'custom', path: ['options', 'inputAdapter', 'bandPermutations'], message: 'share.inputCurve pools the restarts start by start, and band-order starts differ from site to site: turn one of them off' });
        }
      }),
    secureAggregation: z
      .object({
        /** Public bound on target slices per site (weights are scaled by n_k / maxExamples). */
        maxExamples: z.number().int().min(1),
        /** Public bound on target pixels per site (statistics are scaled by its inverse). */
        maxPixels: z.number().int().min(1),
        clip: z.number().positive(),
        threshold: z.number().int().min(2).optional(),
      })
      .strict(),
  })
  .strict();

export type MultiTargetConfig = z.infer<typeof multiTargetSchema>;

/**
 * What went wrong in a multi-target run, as a closed set: a refused scenario file or option; a site's vector outside
 * the public secure-aggregation clip range (a clamped sum would be silently wrong); a site's own curve on other knots
 * than the pooled fit's (its values would not mean the same quantiles).
 */
export type MultiTargetErrorCode = 'BAD_MULTI_TARGET_CONFIG' | 'OUTSIDE_CLIP_RANGE' | 'KNOT_MISMATCH';

export class MultiTargetError extends Error {
  constructor(
    message: string,
    readonly code: MultiTargetErrorCode = 'BAD_MULTI_TARGET_CONFIG',
  ) {
    super(message);
    this.name = 'MultiTargetError';
  }
}

export function parseMultiTargetConfig(raw: unknown, where = 'multi-target config'): MultiTargetConfig {
  const r = multiTargetSchema.safeParse(raw);
  if (!r.success) throw new MultiTargetError(`${where}: ${describeFirstIssue(r.error)}`);
  return r.data;
}
