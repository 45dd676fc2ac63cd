/**
 * The public parameters of one secure-aggregation round, sent by the coordinator in the setup stage and checked by
 * every site before it produces any key material.
 */
import nacl from 'tweetnacl';
import { SecAggError } from './errors.ts';
import { defaultDegree } from './neighbours.ts';
import { checkQuantConfig, type QuantConfig } from './quantize.ts';

export interface SecAggConfig {
  /** Unique per round; bound into signatures, share bundles and mask seeds. */
  readonly roundId: string;
  /** Selected sites in round order; index order defines the pairwise mask sign (+ for i<j). */
  readonly siteIds: readonly string[];
  /** Neighbour degree k: siteIds.length - 1 for the complete graph, else even (SecAgg+ Harary graph). */
  readonly degree: number;
  /** Shamir threshold t among a site's k neighbours; must satisfy k/2 < t <= k. */
  readonly threshold: number;
  readonly quant: QuantConfig;
  /** Length of every site's (packed) input vector. */
  readonly vectorLength: number;
  /** 32 public random bytes from which every site derives the same neighbour graph. */
  readonly roundSeed: Uint8Array;
}

/** Default t = floor(2k/3) + 1: a strict majority of neighbours (see `validateSecAggConfig`) with k/3 slack for dropouts. */
export function defaultThreshold(degree: number): number {
  return Math.floor((2 * degree) / 3) + 1;
}

export interface SecAggConfigInput {
  readonly roundId: string;
  readonly siteIds: readonly string[];
  readonly vectorLength: number;
  readonly quant: QuantConfig;
  readonly degree?: number;
  readonly threshold?: number;
  readonly roundSeed?: Uint8Array;
}

/** Fills defaults (degree, threshold, a fresh random round seed) and validates. */
export function makeSecAggConfig(input: SecAggConfigInput): SecAggConfig {
  const degree = input.degree ?? defaultDegree(input.siteIds.length);
  const cfg: SecAggConfig = {
    roundId: input.roundId,
    siteIds: [...input.siteIds],
    degree,
    threshold: input.threshold ?? defaultThreshold(degree),
    quant: { ...input.quant },
    vectorLength: input.vectorLength,
    roundSeed: input.roundSeed ?? nacl.randomBytes(32),
  };
  validateSecAggConfig(cfg);
  return cfg;
}

/**
 * Refuses, before any key is made, a configuration that cannot be run safely:
 * - fewer than 3 sites, duplicate or empty ids, more than 255 share holders (GF(2^8) Shamir limit);
 * - t <= k/2: then two disjoint groups of neighbours could reconstruct both b_u and s_u^SK of one site
 *   (Bonawitz et al. Sec. 4 requires t > n/2 for this reason; with c colluding neighbours the condition is
 *   2t > k + c, so the default t = floor(2k/3)+1 tolerates c < k/3);
 * - any quantization where n * range wraps around Z_2^32 (`checkQuantConfig`).
 */
export function validateSecAggConfig(cfg: SecAggConfig): void {
  const n = cfg.siteIds.length;
  if (typeof cfg.roundId !== 'string' || cfg.roundId.length === 0 || cfg.roundId.length > 256) {
    throw new SecAggError('bad-config', 'roundId must be a non-empty string of at most 256 characters');
  }
  if (n < 3) throw new SecAggError('bad-config', `secure aggregation needs at least 3 sites, got ${n}`);
  if (new Set(cfg.siteIds).size !== n || cfg.siteIds.some((s) => typeof s !== 'string' || s.length === 0)) {
    throw new SecAggError('bad-config', 'siteIds must be distinct non-empty strings');
  }
  const k = cfg.degree;
  if (!Number.isInteger(k) || k < 2 || k > n - 1 || (k < n - 1 && k % 2 !== 0)) {
    throw new SecAggError('bad-config', `degree must be n-1 (${n - 1}) or an even integer in [2, ${n - 2}], got ${k}`);
  }
  if (k > 255) throw new SecAggError('bad-config', `degree ${k} exceeds 255 share holders (GF(2^8) Shamir)`);
  const t = cfg.threshold;
  if (!Number.isInteger(t) || t < 2 || t > k || 2 * t <= k) {
    throw new SecAggError('bad-config', `threshold must be an integer with k/2 < t <= k (k=${k}), got ${t}`);
  }
  if (!Number.isInteger(cfg.vectorLength) || cfg.vectorLength < 1) {
    throw new SecAggError('bad-config', `vectorLength must be a positive integer, got ${cfg.vectorLength}`);
  }
  if (!(cfg.roundSeed instanceof Uint8Array) || cfg.roundSeed.length !== 32) {
    throw new SecAggError('bad-config', 'roundSeed must be 32 bytes');
  }
  checkQuantConfig(cfg.quant, n);
}
