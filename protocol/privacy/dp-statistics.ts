/**
 * Differential privacy for the statistics a federation hands out (the pooled source-statistics package and the
 * non-IID class histogram; coordinator/storage/run-artifacts.ts), accounted in the same RDP ledger as training.
 *
 * Privacy unit: one labelled CASE (a patient volume, `caseIds`) by default, or one 2D slice (`unit: 'slice'`, the
 * unit DP-SGD protects). Neighbouring datasets differ by adding or removing one unit at one site.
 *
 * Each site turns every unit into a contribution vector u_j normalised so that its L2 norm is at most a public
 * bound Delta (dp-source-stats.ts builds u_j for each statistic and states why the bound holds), clips u_j to Delta
 * anyway (ClipFn, Abadi et al. CCS 2016 Alg. 1 / McMahan et al. ICLR 2018 Alg. 1: the guarantee must not rest on a
 * derivation), sums its units and multiplies the sum by the public scale s = 1 / (U Delta) (U = maxUnitsPerSite) so
 * that every coordinate lies in [-1, 1], the secure sum's clipping range. One unit then moves the sum by at most
 * Delta s = 1 / U in L2 (site-level parts, like the class histogram's per-site distribution, add their own stated
 * sensitivity: `siteLevelSensitivity`).
 * Noise (Gaussian mechanism; Dwork & Roth 2014, Thm. A.1; RDP alpha / (2 z^2) per release, Mironov CSF 2017 Prop. 7):
 * - central: the coordinator adds N(0, (z Delta_s)^2) to every noised coordinate of the unmasked sum; one
 *   sampled-Gaussian ledger event with q = 1 and multiplier z (the coordinator sees the un-noised sum: trusted);
 * - distributed (secure aggregation): each site adds a discrete Gaussian N_Z(0, sigma^2) share to the quantized
 *   coordinates before masking, sigma = z Delta_int / sqrt(minSurvivors), with Delta_int = Delta_s 2^scaleBits +
 *   sqrt(d) (the rounding term of distributed-noise.ts); accounted by Kairouz, Liu, Steinke (ICML 2021) Prop. 14.
 * z is given, or calibrated so that all planned releases together spend `targetEpsilon` at `delta`.
 */
import { z } from 'zod';
import { calibrateNoiseMultiplier } from './calibrate.ts';
import { clipL2InPlace } from './clipping.ts';
import { roundedSensitivity, ddgEvent, type DistributedDpParams } from './distributed-noise.ts';
import { fillDiscreteGaussian } from './discrete-gaussian.ts';
import { addGaussianNoise } from './gaussian-noise.ts';
import { PrivacyLedger, type LedgerReport, type PrivacyEvent } from './ledger.ts';
import type { NoiseSource } from './noise-source.ts';
import { PrivacyError } from './privacy-error.ts';

export const statisticsDpConfigSchema = z
  .object({
    /** Noise multiplier z of every statistics release (std = z x sensitivity). */
    noiseMultiplier: z.number().positive().optional(),
    /** Or: the epsilon all statistics releases of the run spend together (z calibrated over them). */
    targetEpsilon: z.number().positive().optional(),
    delta: z.number().gt(0).lt(1).default(1e-5),
    /** The privacy unit: one case (patient volume) or one 2D slice. */
    unit: z.enum(['case', 'slice']).default('case'),
    /** Public bound U on the units of one site; a site with more refuses (its sum could leave the secure range). */
    maxUnitsPerSite: z.number().int().min(1).max(1_000_000).default(1024),
    /** L2 bound B on each pixel's latent feature vector (features are clipped to it before their moments). */
    featureClip: z.number().positive().default(8),
    /** Bound A on a unit's per-channel mean batch-norm input (|mean| <= A, mean square <= A^2; clamped). */
    activationClip: z.number().positive().default(8),
    /**
     * Nominal pixels of one unit: the released counts are "pixel equivalents" (each unit counts this much, spread
     * over classes by its own fractions), so that integer counts keep their precision. Default: the data's pixels.
     */
    unitPixels: z.number().int().min(1).optional(),
    /**
     * central: the coordinator adds the noise to the unmasked sum (trusted coordinator); distributed: the sites add
     * discrete Gaussian shares before masking. Default: distributed when training uses secure aggregation, else central.
     */
    mode: z.enum(['central', 'distributed']).optional(),
    /** Distributed: calibrate the shares for this many survivors (default: the sites in the sum). */
    minSurvivors: z.number().int().min(1).optional(),
    /** Refuse to release when training + statistics together would exceed this epsilon (at `delta`). */
    maxTotalEpsilon: z.number().positive().optional(),
    /** Central mode only: reproducible coordinator noise (simulations and tests: a known seed leaves no privacy). */
    seed: z.number().int().optional(),
  })
  .strict()
  .refine((c) => (c.noiseMultiplier === undefined) !== (c.targetEpsilon === undefined), { message: 'give exactly one of noiseMultiplier and targetEpsilon' });

export type StatisticsDpConfig = z.input<typeof statisticsDpConfigSchema>;
export type StatisticsDpSettings = z.output<typeof statisticsDpConfigSchema>;

/** Statistics request config keys carrying the DP parameters to the sites (one home for the contract). */
export const STATISTICS_DP_KEYS = {
  unit: 'dpUnit',
  scale: 'dpScale',
  maxUnits: 'dpMaxUnits',
  featureClip: 'dpFeatureClip',
  activationClip: 'dpActivationClip',
  unitPixels: 'dpUnitPixels',
  siteSigma: 'dpSiteSigma',
  delta: 'dpDelta',
} as const;

/** What a site needs to build its DP contribution (from the request config). */
export interface StatisticsDpRequest {
  readonly unit: 'case' | 'slice';
  readonly maxUnits: number;
  readonly featureClip: number;
  readonly activationClip: number;
  readonly unitPixels: number;
  /** Distributed mode: this site's discrete Gaussian sigma (integer units); absent in central mode. */
  readonly siteSigma?: number;
  readonly delta: number;
}

export function statisticsDpToConfig(r: StatisticsDpRequest): Record<string, number | string> {
  const k = STATISTICS_DP_KEYS;
  return {
    [k.unit]: r.unit,
    [k.maxUnits]: r.maxUnits,
    [k.featureClip]: r.featureClip,
    [k.activationClip]: r.activationClip,
    [k.unitPixels]: r.unitPixels,
    [k.delta]: r.delta,
    ...(r.siteSigma !== undefined ? { [k.siteSigma]: r.siteSigma } : {}),
  };
}

/** The DP part of a statistics request config; null when the request is not DP. Malformed values are refused. */
export function statisticsDpFromConfig(config: Readonly<Record<string, unknown>>): StatisticsDpRequest | null {
  const k = STATISTICS_DP_KEYS;
  if (config[k.unit] === undefined) return null;
  const num = (key: string, ok: (v: number) => boolean): number => {
    const v = config[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || !ok(v)) throw new PrivacyError('bad-argument', `statistics config ${key} is missing or out of range (${String(v)})`);
    return v;
  };
  const unit = config[k.unit];
  if (unit !== 'case' && unit !== 'slice') throw new PrivacyError('bad-argument', `statistics config ${k.unit} must be "case" or "slice"`);
  return {
    unit,
    maxUnits: num(k.maxUnits, (v) => Number.isInteger(v) && v >= 1),
    featureClip: num(k.featureClip, (v) => v > 0),
    activationClip: num(k.activationClip, (v) => v > 0),
    unitPixels: num(k.unitPixels, (v) => Number.isInteger(v) && v >= 1),
    delta: num(k.delta, (v) => v > 0 && v < 1),
    ...(config[k.siteSigma] !== undefined ? { siteSigma: num(k.siteSigma, (v) => v > 0) } : {}),
  };
}

/** Groups slice indices into privacy units: by case id, or one slice each. */
export function privacyUnits(caseIds: readonly string[], unit: 'case' | 'slice'): number[][] {
  if (unit === 'slice') return caseIds.map((_, i) => [i]);
  const groups = new Map<string, number[]>();
  caseIds.forEach((id, i) => {
    const g = groups.get(id);
    if (g) g.push(i);
    else groups.set(id, [i]);
  });
  return [...groups.values()];
}

export interface UnitSum {
  /** Sum over units of the clipped unit vectors, times `scale`. */
  readonly values: Record<string, Float32Array>;
  readonly units: number;
  /** Units whose vector exceeded the bound and was scaled down (0 when the normalisation's bound holds). */
  readonly clippedUnits: number;
}

/**
 * Clips every unit's vector (all its named parts together) to L2 norm `bound`, sums them, multiplies by `scale`.
 * Refuses more than `maxUnits` units: the public range of the secure sum assumes at most that many.
 */
export function sumClippedUnits(units: readonly Record<string, Float64Array>[], bound: number, scale: number, maxUnits: number): UnitSum {
  if (units.length === 0) throw new PrivacyError('bad-argument', 'no privacy units to sum');
  if (units.length > maxUnits) throw new PrivacyError('bad-argument', `${units.length} privacy units exceed the public bound maxUnitsPerSite = ${maxUnits}`);
  const names = Object.keys(units[0]).sort();
  const acc: Record<string, Float64Array> = Object.fromEntries(names.map((n) => [n, new Float64Array(units[0][n].length)]));
  let clippedUnits = 0;
  for (const u of units) {
    const parts = names.map((n) => {
      const p = u[n];
      if (!p || p.length !== acc[n].length) throw new PrivacyError('bad-argument', `privacy unit lacks "${n}" or has the wrong length`);
      return Float64Array.from(p);
    });
    if (Object.keys(u).length !== names.length) throw new PrivacyError('bad-argument', 'privacy units differ in their named parts');
    if (!clipL2InPlace(parts, bound).unclipped) clippedUnits++;
    names.forEach((n, k) => {
      const a = acc[n];
      const p = parts[k];
      for (let i = 0; i < a.length; i++) a[i] += p[i];
    });
  }
  const values: Record<string, Float32Array> = {};
  for (const n of names) values[n] = Float32Array.from(acc[n], (x) => x * scale);
  return { values, units: units.length, clippedUnits };
}

/** Noise multiplier of each statistics release. */
export function statisticsNoiseMultiplier(cfg: StatisticsDpConfig, releases: number): number {
  const c = statisticsDpConfigSchema.parse(cfg);
  if (c.noiseMultiplier !== undefined) return c.noiseMultiplier;
  if (!Number.isInteger(releases) || releases < 1) throw new PrivacyError('bad-argument', `statistics releases must be an integer >= 1, got ${releases}`);
  // Each release is a Gaussian mechanism on the whole data (q = 1); `releases` of them compose.
  return calibrateNoiseMultiplier({ samplingRate: 1, steps: releases, delta: c.delta, epsilon: c.targetEpsilon! }).noiseMultiplier;
}

export interface StatisticsNoisePlan {
  readonly mode: 'central' | 'distributed';
  readonly noiseMultiplier: number;
  /** L2 sensitivity of the released sum in the scaled units the sites send (Delta / (U Delta) = 1/U, plus site-level parts). */
  readonly scaledSensitivity: number;
  /** Central: the Gaussian std the coordinator adds to each noised coordinate, scaled units. */
  readonly centralStd: number;
  /** Distributed: every site's discrete Gaussian sigma, integer units, and the integer-domain parameters. */
  readonly distributed: (DistributedDpParams & { readonly dim: number; readonly minSurvivors: number }) | null;
}

/**
 * The noise of one release over `dim` noised coordinates. `scaledSensitivity` is the L2 sensitivity in the units the
 * sites send; distributed mode also needs the secure sum's quantization and the number of sites.
 */
export function planStatisticsNoise(p: {
  mode: 'central' | 'distributed';
  noiseMultiplier: number;
  scaledSensitivity: number;
  dim: number;
  scaleBits?: number;
  sites?: number;
  minSurvivors?: number;
}): StatisticsNoisePlan {
  const zm = p.noiseMultiplier;
  if (!(zm > 0) || !Number.isFinite(zm)) throw new PrivacyError('bad-argument', `noise multiplier must be > 0, got ${zm}`);
  if (!(p.scaledSensitivity > 0)) throw new PrivacyError('bad-argument', `sensitivity must be > 0, got ${p.scaledSensitivity}`);
  if (p.mode === 'central') return { mode: 'central', noiseMultiplier: zm, scaledSensitivity: p.scaledSensitivity, centralStd: zm * p.scaledSensitivity, distributed: null };
  if (p.scaleBits === undefined || p.sites === undefined) throw new PrivacyError('bad-argument', 'distributed statistics noise needs the quantization (scaleBits) and the number of sites');
  const minSurvivors = p.minSurvivors ?? p.sites;
  if (!Number.isInteger(minSurvivors) || minSurvivors < 1 || minSurvivors > p.sites) throw new PrivacyError('bad-argument', `need 1 <= minSurvivors (${minSurvivors}) <= sites (${p.sites})`);
  // Kairouz et al. 2021 (Prop. 14) with deterministic rounding: Delta_int = Delta 2^s + sqrt(d) (distributed-noise.ts).
  const { l2, l1 } = roundedSensitivity(p.scaledSensitivity, p.scaleBits, p.dim);
  const target = (zm * l2) ** 2;
  const siteSigma = Math.sqrt(target / minSurvivors);
  return {
    mode: 'distributed',
    noiseMultiplier: zm,
    scaledSensitivity: p.scaledSensitivity,
    centralStd: 0,
    distributed: {
      l2Sensitivity: l2,
      l1Sensitivity: l1,
      siteSigma,
      varianceAllSurvive: p.sites * siteSigma ** 2,
      varianceMinSurvivors: target,
      extraVarianceFraction: p.sites / minSurvivors - 1,
      dim: p.dim,
      minSurvivors,
    },
  };
}

/** The ledger event of one statistics release (`survivors`: sites in the sum, distributed mode). */
export function statisticsEvent(label: string, plan: StatisticsNoisePlan, survivors: number): PrivacyEvent {
  if (plan.distributed) return ddgEvent(label, plan.distributed, survivors, plan.distributed.dim);
  return { mechanism: 'sampled-gaussian', label, samplingRate: 1, noiseMultiplier: plan.noiseMultiplier, steps: 1 };
}

/** Central mode: adds N(0, std^2) to every noised named vector of an unmasked sum (in place). */
export function addCentralStatisticsNoise(sums: Record<string, Float32Array>, noised: (name: string) => boolean, std: number, src: NoiseSource): void {
  for (const name of Object.keys(sums).sort()) {
    if (!noised(name)) continue;
    const v = Float64Array.from(sums[name]);
    addGaussianNoise(v, std, src);
    sums[name] = Float32Array.from(v);
  }
}

/** Distributed mode: adds this site's N_Z(0, sigma^2) share to the quantized entries of `ranges`, mod 2^32 (in place). */
export function addStatisticsNoiseShare(q: Uint32Array, ranges: readonly { offset: number; length: number }[], siteSigma: number, src: NoiseSource): void {
  for (const r of ranges) {
    const n = new Float64Array(r.length);
    fillDiscreteGaussian(n, siteSigma, src);
    for (let i = 0; i < r.length; i++) q[r.offset + i] = (q[r.offset + i] + n[i]) >>> 0;
  }
}

/** What a run has spent: training and statistics composed in RDP (Mironov 2017, Prop. 1), converted once. */
export interface RunPrivacyReport {
  readonly delta: number;
  readonly training: { readonly epsilon: number } | null;
  readonly statistics: { readonly epsilon: number; readonly releases: readonly string[] } | null;
  /** Composed epsilon of everything released so far (<= training + statistics). */
  readonly epsilon: number;
  readonly order: number;
  readonly byLabel: LedgerReport['byLabel'];
}

export function composeRunPrivacy(training: readonly PrivacyEvent[], statistics: readonly PrivacyEvent[], delta: number): RunPrivacyReport {
  const all = new PrivacyLedger();
  for (const e of [...training, ...statistics]) all.record(e);
  const report = all.report(delta);
  const part = (events: readonly PrivacyEvent[]): number => {
    const l = new PrivacyLedger();
    for (const e of events) l.record(e);
    return l.spent(delta).epsilon;
  };
  return {
    delta,
    training: training.length > 0 ? { epsilon: part(training) } : null,
    statistics: statistics.length > 0 ? { epsilon: part(statistics), releases: [...new Set(statistics.map((e) => e.label))] } : null,
    epsilon: report.epsilon,
    order: report.order,
    byLabel: report.byLabel,
  };
}
