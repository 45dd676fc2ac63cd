/**
 * The site side of distributed DP-FedAvg under secure aggregation (the "mod" in the fit path).
 *
 * The coordinator announces the DP parameters in the FitConfig (`dpClip`, `dpSiteSigma`, `dpDelta`); the site
 *  1. takes its update Delta = w_trained - w_global over the aggregated tensors and clips it to L2 norm C
 *     (McMahan et al., ICLR 2018, Alg. 1), so FedBN's local BN tensors never enter;
 *  2. packs w_global + Delta with weight 1 (not n_k: uniform weights bound a site's influence) through the same
 *     fit contribution as plain secure rounds ([ (w/M), 1/M, metrics/M ], protocol/secagg/fit-contribution.ts), so
 *     the coordinator reads the mean exactly as before: w_global + mean(Delta) + noise / m;
 *  3. adds its N_Z(0, sigma^2) share to the quantized tensor entries only, before masking (distributed-noise.ts).
 * One site's influence on the integer sum: its packed tensors differ from "no update" by
 * round((g + Delta)/M * 2^s) - round(g/M * 2^s), of L2 norm <= C/M * 2^s + sqrt(d) (each coordinate's two
 * roundings differ by at most 1; float32 rounding adds far less). That is the sensitivity the noise is calibrated to.
 */
import { type FitContributionSpec, fitContribution, fitContributionLayout } from '../secagg/index.ts';
import { clipL2InPlace } from './clipping.ts';
import { fillDiscreteGaussian } from './discrete-gaussian.ts';
import type { NoiseSource } from './noise-source.ts';
import { PrivacyError } from './privacy-error.ts';

/** FitConfig keys carrying distributed-DP parameters from the coordinator to the sites. */
export const DP_CONFIG_KEYS = { clip: 'dpClip', siteSigma: 'dpSiteSigma', delta: 'dpDelta' } as const;

export interface DistributedDpFitConfig {
  /** L2 clipping norm of the update, model units. */
  readonly clip: number;
  /** Discrete Gaussian sigma of this site's share, integer (quantized) units. */
  readonly siteSigma: number;
  readonly delta: number;
}

/** The DP parameters of a fit config, null when the round is not distributed-DP; malformed ones are refused. */
export function distributedDpFromConfig(config: Readonly<Record<string, unknown>>): DistributedDpFitConfig | null {
  const clip = config[DP_CONFIG_KEYS.clip];
  const siteSigma = config[DP_CONFIG_KEYS.siteSigma];
  const delta = config[DP_CONFIG_KEYS.delta];
  if (clip === undefined && siteSigma === undefined) return null;
  if (typeof clip !== 'number' || !(clip > 0) || !Number.isFinite(clip)) throw new PrivacyError('bad-argument', `fit config ${DP_CONFIG_KEYS.clip} must be a number > 0`);
  if (typeof siteSigma !== 'number' || !(siteSigma > 0) || !Number.isFinite(siteSigma)) throw new PrivacyError('bad-argument', `fit config ${DP_CONFIG_KEYS.siteSigma} must be a number > 0`);
  if (typeof delta !== 'number' || !(delta > 0 && delta < 1)) throw new PrivacyError('bad-argument', `fit config ${DP_CONFIG_KEYS.delta} must be in (0, 1)`);
  return { clip, siteSigma, delta };
}

export interface DpFitContribution {
  /** The float vector to quantize and mask (same layout as a plain secure fit contribution). */
  readonly vector: Float32Array;
  /** Adds this site's noise share to the quantized vector's tensor entries, mod 2^32 (SiteSessionOptions.addNoise). */
  readonly addNoise: (quantized: Uint32Array) => void;
  /** L2 norm of the update before clipping (kept local: it is not private to release). */
  readonly updateNorm: number;
  readonly clipped: boolean;
}

/**
 * Builds the clipped contribution. `global` and `trained` must hold every spec tensor; the noise is drawn when
 * `addNoise` runs (at masking), from `noise` (a crypto source in real runs).
 */
export function dpFitContribution(
  spec: FitContributionSpec,
  global: ReadonlyMap<string, Float32Array>,
  trained: ReadonlyMap<string, Float32Array>,
  metrics: Readonly<Record<string, number>>,
  dp: DistributedDpFitConfig,
  noise: NoiseSource,
): DpFitContribution {
  const deltas = spec.tensors.map((t) => {
    const g = global.get(t.name);
    const w = trained.get(t.name);
    if (!g || !w || g.length !== t.length || w.length !== t.length) throw new PrivacyError('bad-argument', `tensor "${t.name}" is missing or has the wrong length`);
    const d = new Float64Array(t.length);
    for (let i = 0; i < d.length; i++) d[i] = w[i] - g[i];
    return d;
  });
  const clip = clipL2InPlace(deltas, dp.clip);
  const update = new Map<string, Float32Array>();
  spec.tensors.forEach((t, k) => {
    const g = global.get(t.name)!;
    const out = new Float32Array(t.length);
    for (let i = 0; i < out.length; i++) out[i] = g[i] + deltas[k][i];
    update.set(t.name, out);
  });
  const vector = fitContribution(spec, update, 1, metrics);
  const tensorNames = new Set(spec.tensors.map((t) => t.name));
  const ranges = fitContributionLayout(spec).entries.filter((e) => tensorNames.has(e.name));
  const addNoise = (q: Uint32Array): void => {
    for (const r of ranges) {
      const n = new Float64Array(r.length);
      fillDiscreteGaussian(n, dp.siteSigma, noise);
      for (let i = 0; i < r.length; i++) q[r.offset + i] = (q[r.offset + i] + n[i]) >>> 0;
    }
  };
  return { vector, addNoise, updateNorm: clip.norm, clipped: !clip.unclipped };
}
