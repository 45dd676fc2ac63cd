/**
 * The SFDA shift suite (simulations/scenarios/sfda-suite*.json, `kind: sfda-suite`), validated with zod: one federated
 * source model per dataset and seed, adapted to every target shift family by every method row, next to the references
 * (source-only, centralized source, few-label rows, target-supervised).
 */
import { z } from 'zod';
import { describeFirstIssue } from '../../protocol/common/index.ts';
import { ScannerShiftOrPresetSchema } from '../phantoms/index.ts';
import { IntensityAugmentSchema } from '../../site-agent/training/index.ts';
import { inputAdapterOptionsSchema } from './adapt-options-schema.ts';

const siteSchema = z.object({ shift: ScannerShiftOrPresetSchema, numCases: z.number().int().min(1).max(200) }).strict();

const familySchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/, 'family names are lowercase letters, digits and dashes'),
    shift: ScannerShiftOrPresetSchema,
    /** A held-out family: never used for tuning, reported in its own table. */
    heldOut: z.boolean().default(false),
  })
  .strict();

/** The U-Net's width (channels of the first level, doubled per level) and depth (down-sampling levels). */
const modelSchema = z.object({ baseChannels: z.number().int().min(2).max(64), depth: z.number().int().min(1).max(4) }).strict();

/**
 * Which federated rounds train on augmented copies (federated-source.ts `AugmentSchedule`): every round, rounds >=
 * `from`, every 2nd round, or every round on the plain slices plus an augmented copy ('mixed'). The centralized
 * reference follows it chunk by chunk (its c-th chunk of `localEpochs` passes stands for round c + 1).
 */
const augmentScheduleSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('every') }).strict(),
  z.object({ kind: z.literal('from-round'), from: z.number().int().min(1).max(200) }).strict(),
  z.object({ kind: z.literal('alternate') }).strict(),
  z.object({ kind: z.literal('mixed') }).strict(),
]);

/** The target-supervised reference's training (see `targetSupervised` below). */
const targetSupervisedTraining = {
  epochs: z.number().int().min(1).max(500),
  lr: z.number().positive(),
  init: z.enum(['source', 'scratch']),
  /** A step decay: the last `epochs` of the `epochs` at `lr` (a fresh Adam). */
  decay: z.object({ epochs: z.number().int().min(1).max(500), lr: z.number().positive() }).strict().optional(),
};
const targetSupervisedSchema = z
  .object({ numCases: z.number().int().min(1).max(200), ...targetSupervisedTraining, init: targetSupervisedTraining.init.default('source') })
  .strict();
const decayFitsEpochs = (t: { epochs?: number; decay?: { epochs: number } }): boolean => t.decay === undefined || t.epochs === undefined || t.decay.epochs < t.epochs;
const DECAY_TOO_LONG = 'decay.epochs must be fewer than epochs';

const datasetSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,39}$/),
    /** `phantom`: generated phantoms; `mricron`: real T1 anatomy (Debian mricron-data ch2 + AAL, 4 classes). */
    anatomy: z.enum(['phantom', 'mricron']),
    size: z.number().int().min(8).max(256),
    numClasses: z.number().int().min(2).max(8),
    slicesPerCase: z.number().int().min(1).max(128),
    sourceSites: z.array(siteSchema).min(1).max(16),
    /** Held-out cases per source scanner scoring the federated and centralized source models in their own domain. */
    sourceTestCases: z.number().int().min(1).max(50),
    /** Per family: unlabelled cases adapted on, and separate labelled cases scored on. */
    adaptCases: z.number().int().min(1).max(100),
    testCases: z.number().int().min(1).max(100),
    families: z.array(familySchema).min(1).max(32),
    /**
     * This consortium's source augmentation recipe: overrides `federated.augment` for this dataset's source models
     * (same meaning, same cache key as `federated.augment` with these options). sfda-suite.json sets `{}` (the
     * nnU-Net-style set, p 0.5) for mricron only, chosen on tuning seeds 101-103 (session 9, BENCHMARKS.md): mricron's
     * in-domain source Dice rose (0.748 -> 0.780) and every published family's best source-free row rose or held (mean
     * gap closed 65% -> 87%); on phantoms every recipe tried cost 4-17 in-domain points, which a consortium sees on
     * its own validation data before any target exists, so the phantom consortium trains plain.
     */
    sourceAugment: IntensityAugmentSchema.optional(),
    /**
     * This dataset's U-Net (overrides the suite's `model`): its federated source model, centralized reference and
     * from-scratch target-supervised reference all use it. Absent = the suite's `model` (cache keys as before).
     * Not set in sfda-suite.json. Session 10 (tuning seeds 101-103): phantoms with 16 channels and the nnU-Net set
     * (p 0.5) keep the in-domain Dice (0.887 vs plain 0.890) and raise every published best row (mean gap 52% -> 59%),
     * but every phantom cell then runs on the wider net (+50% CPU on the phantom half, ~+7 min per suite).
     */
    model: modelSchema.optional(),
    /** This consortium's `federated.augmentSchedule` (with `sourceAugment`); absent = the suite's (cache keys as before). */
    sourceAugmentSchedule: augmentScheduleSchema.optional(),
    /**
     * This consortium's federated training length (overrides `federated.rounds` / `localEpochs` for its source models;
     * the centralized reference follows, as it always makes as many passes as the federation). Absent = the suite's.
     */
    sourceTraining: z.object({ rounds: z.number().int().min(1).max(200).optional(), localEpochs: z.number().int().min(1).max(50).optional() }).strict().optional(),
    /**
     * This dataset's target-supervised reference training, merged over the suite's `targetSupervised` (the labelled
     * cases stay the suite's `numCases`, shared with the few-label rows). sfda-suite.json fine-tunes the augmented
     * mricron source model (`init: 'source'`) and trains the phantom reference from scratch: on tuning seeds 101-103
     * (published families, BENCHMARKS.md session 10) each was the stronger reference of its dataset, mean Dice mricron
     * 0.863 fine-tuned vs 0.842 from scratch, phantom 0.854 vs 0.860; 20 epochs instead of 10 added nothing.
     */
    targetSupervised: z.object(targetSupervisedTraining).partial().strict().optional(),
    /**
     * This dataset's input-adapter settings, merged under every row's own `inputAdapter` options (a row's option wins)
     * and under the few-label mode's; rows without an input adapter (or with `inputPolarities`) are unchanged. Absent:
     * the adapter's defaults. sfda-suite.json turns on the band-order starts for mricron
     * (`{ "bandPermutations": {} }`, whose guard also refuses an order under which a class vanishes): on new tuning
     * seeds 104-109 mricron reorder rose 0.401 -> 0.502 (adapter + AdaBN; 5 of 6 seeds up, none down), and on seeds
     * 101-103 every mild-shift cell kept the narrow pick (BENCHMARKS.md session 11). Phantoms keep the default: there a
     * band order lost 0.044 on low-field 102 and did nothing on reorder (session 7).
     */
    inputAdapter: inputAdapterOptionsSchema.optional(),
  })
  .strict();

/** One row of the table: a method of `adapt()` with its options. */
const methodRowSchema = z
  .object({
    name: z.string().regex(/^[a-z0-9][a-z0-9+-]{0,39}$/),
    method: z.enum(['adabn', 'tent', 'osuda', 'gmm-swd', 'mean-teacher', 'ratio-entropy']),
    options: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

export const sfdaSuiteSchema = z
  .object({
    kind: z.literal('sfda-suite'),
    name: z.string().min(1),
    /** Reported seeds (settings were chosen on other, tuning seeds). */
    seeds: z.array(z.number().int()).min(1).max(20),
    datasets: z.array(datasetSchema).min(1).max(4),
    model: modelSchema,
    federated: z
      .object({
        rounds: z.number().int().min(1).max(200),
        localEpochs: z.number().int().min(1).max(50),
        batchSize: z.number().int().min(1).max(64),
        lr: z.number().positive(),
        /**
         * Source-side intensity augmentation / domain randomisation (intensity-augment.ts): every round each source site
         * trains on a fresh augmented copy of its slices, and the centralized reference on a fresh augmented copy of the
         * pooled slices every `localEpochs` passes. Off when absent (the source models, and their cache keys, as before).
         * Off for every dataset in sfda-suite.json (mricron sets its own `sourceAugment`): on tuning seeds 101-103
         * (session 9) every variant tried (nnU-Net set p 0.5 / 0.25, pointwise GIN, GIN + IPA + bias) cost the phantom
         * source model 4-17 in-domain Dice points.
         */
        augment: IntensityAugmentSchema.optional(),
        /**
         * How the consortium decides whether to use `augment`: 'always', or 'validation' = train the federated model
         * both ways and keep the augmented one only if its mean Dice on held-out SOURCE validation cases
         * (`sourceTestCases` fresh cases per source site, distinct from the in-domain test cases) is not lower —
         * the choice a consortium can make from its own data, before any target hospital exists. The centralized
         * reference follows the federation's choice. Absent = 'always' (cache keys as before).
         */
        augmentSelection: z.enum(['always', 'validation']).optional(),
        /** Which rounds use `augment`; absent = every round (cache keys as before). */
        augmentSchedule: augmentScheduleSchema.optional(),
        /** Source validation cases per source site for `augmentSelection: 'validation'` (default `sourceTestCases`). */
        augmentValidationCases: z.number().int().min(1).max(50).optional(),
      })
      .strict(),
    /** Pooled training on all source slices, as many passes as the federation made (rounds x local epochs) unless given. */
    centralized: z.object({ epochs: z.number().int().min(1).max(2000).optional(), lr: z.number().positive().optional() }).strict().default({}),
    /**
     * The strong upper bound: `numCases` labelled target cases (drawn apart from the adaptation and test cases; the
     * few-label rows label their first k), `epochs` passes of Adam at `lr` (the last `decay.epochs` of them at
     * `decay.lr` when given), starting from the federated source model (`init: 'source'`) or from a fresh network
     * (`'scratch'`). A dataset may override the training (not `numCases`) with its own `targetSupervised`.
     */
    targetSupervised: targetSupervisedSchema.refine(decayFitsEpochs, { message: DECAY_TOO_LONG, path: ['decay', 'epochs'] }),
    /** Few-label rows: the first k of the supervised cases labelled, plus the unlabelled adaptation cases. */
    fewLabel: z
      .object({ cases: z.array(z.number().int().min(1).max(50)).max(8), options: z.record(z.string(), z.unknown()).default({}) })
      .strict()
      .default({ cases: [], options: {} }),
    adapt: z
      .object({
        batchSize: z.number().int().min(1).max(64),
        /** Options every row starts from. */
        common: z.record(z.string(), z.unknown()).default({}),
        rows: z.array(methodRowSchema).min(1).max(24),
      })
      .strict(),
  })
  .strict()
  .superRefine((s, ctx) => {
    const rows = new Set<string>();
    s.adapt.rows.forEach((r, i) => {
      if (rows.has(r.name)) ctx.addIssue({ code: 'custom', path: ['adapt', 'rows', i, 'name'], message: `duplicate row "${r.name}"` });
      rows.add(r.name);
    });
    s.datasets.forEach((d, i) => {
      const names = new Set<string>();
      d.families.forEach((f, j) => {
        if (names.has(f.name)) ctx.addIssue({ code: 'custom', path: ['datasets', i, 'families', j, 'name'], message: `duplicate family "${f.name}"` });
        names.add(f.name);
      });
      if (d.targetSupervised !== undefined && !decayFitsEpochs(targetSupervisedOf(s, d))) ctx.addIssue({ code: 'custom', path: ['datasets', i, 'targetSupervised', 'decay', 'epochs'], message: DECAY_TOO_LONG });
      for (const k of s.fewLabel.cases) {
        if (k > s.targetSupervised.numCases) ctx.addIssue({ code: 'custom', path: ['fewLabel', 'cases'], message: `${k} labelled cases exceed targetSupervised.numCases` });
      }
    });
  });

export type SfdaSuiteConfig = z.infer<typeof sfdaSuiteSchema>;
export type SuiteDataset = SfdaSuiteConfig['datasets'][number];
export type SuiteFamily = SuiteDataset['families'][number];

export type TargetSupervisedSettings = z.infer<typeof targetSupervisedSchema>;

/** The target-supervised reference's settings for one dataset: its own `targetSupervised` over the suite's. */
export function targetSupervisedOf(
  cfg: { targetSupervised: TargetSupervisedSettings },
  d: { targetSupervised?: Partial<Omit<TargetSupervisedSettings, 'numCases'>> },
): TargetSupervisedSettings {
  return { ...cfg.targetSupervised, ...d.targetSupervised };
}

export class SfdaSuiteError extends Error {
  readonly code = 'BAD_SUITE_CONFIG' as const;
  constructor(message: string) {
    super(message);
    this.name = 'SfdaSuiteError';
  }
}

export function parseSfdaSuiteConfig(raw: unknown, where = 'sfda suite config'): SfdaSuiteConfig {
  const r = sfdaSuiteSchema.safeParse(raw);
  if (!r.success) throw new SfdaSuiteError(`${where}: ${describeFirstIssue(r.error)}`);
  return r.data;
}
