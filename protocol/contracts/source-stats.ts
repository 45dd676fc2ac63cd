/**
 * The source statistics package (JSON, `kind: fedsfda-source-stats`): what a new site receives besides the model,
 * and nothing from which a source image could be read back. Every field is a sufficient statistic (counts, sums,
 * sums of squares / outer products), so packages of several sites pool by plain addition, which secure aggregation
 * can do on masked values. Computed by site-agent/adapt/source-stats.ts, pooled through a statistics round
 * (protocol/source-stats-vectors.ts), read by `fedsfda adapt`.
 * - `bn`: per BN layer, per channel, the count, Σx and Σx² of the layer's input over source pixels (inference mode).
 * - `classes[c]`: the label count, and moments (count, Σz, Σzzᵀ) of the features before the 1x1 classifier over
 *   confident correct pixels (ground truth = prediction = c, max softmax > `confidence`; Stan & Rostami, MedIA 2024,
 *   sec. 3.2) and over all pixels labelled c.
 */
import { z } from 'zod';

export const SOURCE_STATS_KIND = 'fedsfda-source-stats';
export const SOURCE_STATS_VERSION = 1;

const MomentsSchema = z.object({
  count: z.number().int().min(0),
  sum: z.array(z.number()),
  sumOuter: z.array(z.number()),
});

export const BnMomentsSchema = z.object({
  count: z.number().int().min(0),
  sum: z.array(z.number()),
  sumSq: z.array(z.number()),
});

export const SourceStatsSchema = z
  .object({
    kind: z.literal(SOURCE_STATS_KIND),
    version: z.literal(SOURCE_STATS_VERSION),
    numClasses: z.number().int().min(2).max(255),
    latentDim: z.number().int().min(1),
    confidence: z.number().gt(0).lt(1),
    /** Number of source sites pooled into this package. */
    numSites: z.number().int().min(1),
    bn: z.record(z.string(), BnMomentsSchema),
    /**
     * The label code of each class where class k is not stored as k (an atlas's region numbers listed in the
     * source's dataset.json `labels`; class k = the k-th smallest code); absent = class indices. Predictions on a
     * new site are written with these codes.
     */
    labelCodes: z.array(z.number().int().min(0)).optional(),
    /**
     * The differential-privacy guarantee of this package when it was released with DP (protocol/privacy/
     * dp-statistics.ts): (epsilon, delta) of this release alone and of the whole run up to it (training included),
     * the privacy unit, and the public bounds. Counts are then "pixel equivalents" (each unit weighs `unitPixels`).
     * Absent: the package carries no DP guarantee.
     */
    privacy: z
      .object({
        mechanism: z.enum(['gaussian', 'distributed-discrete-gaussian']),
        unit: z.enum(['case', 'slice']),
        epsilon: z.number().min(0),
        delta: z.number().gt(0).lt(1),
        runEpsilon: z.number().min(0),
        noiseMultiplier: z.number().positive(),
        maxUnitsPerSite: z.number().int().min(1),
        featureClip: z.number().positive(),
        activationClip: z.number().positive(),
        unitPixels: z.number().int().min(1),
      })
      .strict()
      .optional(),
    classes: z.array(
      z.object({
        /** Source pixels labelled with this class (the class prior numerator). */
        labelCount: z.number().int().min(0),
        confident: MomentsSchema,
        labelled: MomentsSchema,
      }),
    ),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.classes.length !== s.numClasses) ctx.addIssue({ code: 'custom', path: ['classes'], message: `expected ${s.numClasses} classes` });
    if (s.labelCodes !== undefined) {
      if (s.labelCodes.length !== s.numClasses) ctx.addIssue({ code: 'custom', path: ['labelCodes'], message: `expected ${s.numClasses} codes, one per class` });
      if (s.labelCodes.some((c, i) => i > 0 && c <= s.labelCodes![i - 1])) ctx.addIssue({ code: 'custom', path: ['labelCodes'], message: 'codes must be strictly increasing (class k = the k-th smallest code)' });
    }
    s.classes.forEach((c, i) => {
      for (const key of ['confident', 'labelled'] as const) {
        const m = c[key];
        if (m.sum.length !== s.latentDim || m.sumOuter.length !== s.latentDim * s.latentDim) {
          ctx.addIssue({ code: 'custom', path: ['classes', i, key], message: `moments must have ${s.latentDim} / ${s.latentDim ** 2} values` });
        }
      }
    });
    for (const [layer, m] of Object.entries(s.bn)) {
      if (m.sum.length !== m.sumSq.length) ctx.addIssue({ code: 'custom', path: ['bn', layer], message: 'sum and sumSq differ in length' });
    }
  });

export type SourceStats = z.infer<typeof SourceStatsSchema>;
export type BnMoments = z.infer<typeof BnMomentsSchema>;
/** Moments of latent features: count, Σz (d values) and Σzzᵀ (d x d, row-major). */
export type LatentMomentsJson = z.infer<typeof MomentsSchema>;
