/**
 * Sample-level DP-SGD at one site (Abadi, Chu, Goodfellow, McMahan, Mironov, Talwar, Zhang, "Deep Learning with
 * Differential Privacy", CCS 2016, Alg. 1): every local step draws a Poisson sample of the site's training slices
 * (each slice independently with probability q), clips each slice's gradient to L2 norm C, sums, adds N(0, sigma^2 C^2 I)
 * and divides by the expected batch size qN. The unit protected is ONE training slice of this site (not a patient
 * with several slices, not the site: that is client-level DP-FedAvg).
 *
 * Sampling follows Opacus's DPDataLoader (`opacus/data_loader.py`): q = 1 / (steps per epoch) with
 * steps per epoch = ceil(N / batch size), so the expected batch is about the configured batch size. Accounting: each
 * step is one sampled Gaussian mechanism at (q, sigma) (Mironov, Talwar, Zhang 2019), composed in the site's ledger.
 * This file plans a run (calibrates sigma for a target epsilon, refuses a plan over budget); the training loop is
 * site-agent/training/dp-sgd.ts. Pure: no tfjs.
 */
import { z } from 'zod';
import { calibrateNoiseMultiplier, sampledGaussianEpsilon } from './calibrate.ts';
import { PrivacyError } from './privacy-error.ts';

/** `training.dpSgd` in a scenario (all sites) or a site's own settings. */
export const dpSgdConfigSchema = z
  .object({
    /** C: each slice's gradient is clipped to this L2 norm. */
    clip: z.number().positive(),
    noiseMultiplier: z.number().positive().optional(),
    /** Calibrate sigma so that the planned local epochs spend at most this epsilon at `delta`. */
    targetEpsilon: z.number().positive().optional(),
    delta: z.number().gt(0).lt(1).default(1e-5),
    /** Refuse to train past this epsilon (and refuse a plan that would). */
    maxEpsilon: z.number().positive().optional(),
    /** Reproducible sampling and noise: simulations and tests only (a known seed leaves no privacy). */
    seed: z.number().int().optional(),
  })
  .strict()
  .refine((c) => (c.noiseMultiplier === undefined) !== (c.targetEpsilon === undefined), { message: 'give exactly one of noiseMultiplier and targetEpsilon' });

export type DpSgdConfig = z.input<typeof dpSgdConfigSchema>;

/**
 * What a DP-SGD site reports with each fit (and writes into its audit log): its own accounting. Not private: it
 * follows from the site's slice count, which `numExamples` already reveals, and the public settings.
 */
export const DP_SGD_METRIC = {
  epsilon: 'dpSgd.epsilon',
  delta: 'dpSgd.delta',
  /** Noised steps over the whole run so far. */
  steps: 'dpSgd.steps',
  noiseMultiplier: 'dpSgd.noiseMultiplier',
  samplingRate: 'dpSgd.samplingRate',
  clip: 'dpSgd.clip',
  /** Fraction of this round's per-slice gradients that were clipped. */
  clippedFraction: 'dpSgd.clippedFraction',
} as const;

export interface DpSgdPlan {
  readonly clip: number;
  readonly noiseMultiplier: number;
  readonly delta: number;
  /** Poisson sampling rate q of every step. */
  readonly samplingRate: number;
  readonly stepsPerEpoch: number;
  /** qN: the divisor of the noised gradient sum. */
  readonly expectedBatchSize: number;
  readonly plannedSteps: number;
  /** epsilon after all planned steps. */
  readonly plannedEpsilon: number;
  readonly maxEpsilon: number | null;
}

export interface DpSgdRunShape {
  /** N: training slices of the site. */
  readonly examples: number;
  readonly batchSize: number;
  /** Local epochs over the whole run (rounds x local epochs). */
  readonly plannedEpochs: number;
}

/** Steps per epoch and sampling rate as Opacus's DPDataLoader sets them. */
export function dpSgdSampling(examples: number, batchSize: number): { stepsPerEpoch: number; samplingRate: number } {
  if (!Number.isInteger(examples) || examples < 1) throw new PrivacyError('bad-argument', `DP-SGD needs at least one training example, got ${examples}`);
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new PrivacyError('bad-argument', `batch size must be an integer >= 1, got ${batchSize}`);
  const stepsPerEpoch = Math.ceil(examples / batchSize);
  return { stepsPerEpoch, samplingRate: 1 / stepsPerEpoch };
}

/**
 * The run's DP-SGD parameters; throws PrivacyError('budget-exceeded') when the planned epochs would spend more than
 * `maxEpsilon`, before any step is taken.
 */
export function planDpSgd(config: DpSgdConfig, run: DpSgdRunShape): DpSgdPlan {
  const c = dpSgdConfigSchema.parse(config);
  if (!Number.isInteger(run.plannedEpochs) || run.plannedEpochs < 1) throw new PrivacyError('bad-argument', `planned epochs must be an integer >= 1, got ${run.plannedEpochs}`);
  const { stepsPerEpoch, samplingRate } = dpSgdSampling(run.examples, run.batchSize);
  const plannedSteps = stepsPerEpoch * run.plannedEpochs;
  const noiseMultiplier =
    c.noiseMultiplier ?? calibrateNoiseMultiplier({ samplingRate, steps: plannedSteps, delta: c.delta, epsilon: c.targetEpsilon! }).noiseMultiplier;
  const plannedEpsilon = sampledGaussianEpsilon({ samplingRate, noiseMultiplier, steps: plannedSteps, delta: c.delta }).epsilon;
  if (c.maxEpsilon !== undefined && plannedEpsilon > c.maxEpsilon) {
    throw new PrivacyError(
      'budget-exceeded',
      `DP-SGD over ${run.plannedEpochs} local epochs (${plannedSteps} steps at q = ${samplingRate.toFixed(4)}, sigma ${noiseMultiplier}) spends epsilon ` +
        `${plannedEpsilon.toFixed(3)} (delta ${c.delta}), over the budget of ${c.maxEpsilon}: raise the noise multiplier, train fewer epochs or raise the budget`,
    );
  }
  return {
    clip: c.clip,
    noiseMultiplier,
    delta: c.delta,
    samplingRate,
    stepsPerEpoch,
    expectedBatchSize: samplingRate * run.examples,
    plannedSteps,
    plannedEpsilon,
    maxEpsilon: c.maxEpsilon ?? null,
  };
}
