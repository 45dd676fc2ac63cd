/**
 * The `differentialPrivacy` settings as written in config files (`fedsfda coordinator --config`, scenario files
 * `training.differentialPrivacy`), and the one function that turns them into a DP strategy wrapper.
 *
 * Give either `noiseMultiplier` (z) or `targetEpsilon` (z is then calibrated so the planned rounds spend at most
 * that epsilon at `delta`), and either `clip` (fixed clipping norm C) or `adaptive` (Andrew et al. 2021).
 * `maxEpsilon` is the budget: a run whose planned rounds would spend more refuses to start (PrivacyError
 * 'budget-exceeded'). `seed` makes the noise reproducible: simulations and tests only, never a real run.
 */
import { z } from 'zod';
import { calibrateNoiseMultiplier, cryptoNoiseSource, seededNoiseSource } from '../../protocol/privacy/index.ts';
import { DpFedAvg, type DpFedAvgOptions } from './dp-fedavg.ts';
import type { Strategy } from './strategy.ts';

export const differentialPrivacyConfigSchema = z
  .object({
    noiseMultiplier: z.number().positive().optional(),
    targetEpsilon: z.number().positive().optional(),
    delta: z.number().gt(0).lt(1).default(1e-5),
    clip: z.number().positive().optional(),
    adaptive: z
      .object({
        initialClip: z.number().positive().optional(),
        targetQuantile: z.number().min(0).max(1).optional(),
        clipLearningRate: z.number().positive().optional(),
        countStddev: z.number().min(0).optional(),
      })
      .strict()
      .optional(),
    maxEpsilon: z.number().positive().optional(),
    /** Sites sampled per round (default: all enrolled sites, sampling rate 1). */
    sitesPerRound: z.number().int().min(1).optional(),
    /** With secure aggregation: calibrate the sites' noise shares for this many survivors (default: all sites). */
    minSurvivors: z.number().int().min(1).optional(),
    seed: z.number().int().optional(),
  })
  .strict()
  .refine((c) => (c.noiseMultiplier === undefined) !== (c.targetEpsilon === undefined), { message: 'give exactly one of noiseMultiplier and targetEpsilon' })
  .refine((c) => (c.clip === undefined) !== (c.adaptive === undefined), { message: 'give exactly one of clip (fixed clipping) and adaptive' });

export type DifferentialPrivacyConfig = z.input<typeof differentialPrivacyConfigSchema>;

export interface DpRunShape {
  readonly rounds: number;
  readonly enrolledSites: number;
  /** Set when the run uses secure aggregation: the sites add the noise (DpFedAvgOptions.distributed). */
  readonly distributed?: Omit<NonNullable<DpFedAvgOptions['distributed']>, 'minSurvivors'>;
}

/** The noise multiplier a config asks for (calibrated from targetEpsilon over the planned rounds when given). */
export function resolveNoiseMultiplier(cfg: DifferentialPrivacyConfig, run: DpRunShape): number {
  const c = differentialPrivacyConfigSchema.parse(cfg);
  if (c.noiseMultiplier !== undefined) return c.noiseMultiplier;
  const m = c.sitesPerRound ?? run.enrolledSites;
  return calibrateNoiseMultiplier({ samplingRate: m / run.enrolledSites, steps: Math.max(1, run.rounds), delta: c.delta, epsilon: c.targetEpsilon! }).noiseMultiplier;
}

/** Wraps `inner` in central DP-FedAvg. Throws PrivacyError('budget-exceeded' | 'bad-argument') before any round. */
export function withDifferentialPrivacy(inner: Strategy, cfg: DifferentialPrivacyConfig, run: DpRunShape): DpFedAvg {
  const c = differentialPrivacyConfigSchema.parse(cfg);
  return new DpFedAvg(inner, {
    noiseMultiplier: resolveNoiseMultiplier(c, run),
    clipping: c.clip !== undefined ? { mode: 'fixed', clip: c.clip } : { mode: 'adaptive', ...c.adaptive },
    sitesPerRound: c.sitesPerRound ?? run.enrolledSites,
    totalSites: run.enrolledSites,
    rounds: run.rounds,
    delta: c.delta,
    ...(c.maxEpsilon !== undefined ? { maxEpsilon: c.maxEpsilon } : {}),
    noise: c.seed !== undefined ? seededNoiseSource(c.seed) : cryptoNoiseSource(),
    ...(run.distributed ? { distributed: { ...run.distributed, ...(c.minSurvivors !== undefined ? { minSurvivors: c.minSurvivors } : {}) } } : {}),
  });
}
