/**
 * One round of federated multi-target adaptation (multi-target.ts): the secure statistics sum, every site's local
 * mean-teacher epoch, and the secure sum of the students' non-BN weights turned into the next global weights by the
 * coordinator's FedBN strategy (Li, Jiang, Zhang, Kamp, Dou, "FedBN: Federated Learning on Non-IID Features via Local
 * Batch Normalization", ICLR 2021, Alg. 1: BN parameters and statistics never leave the site, every other tensor is
 * averaged, weighted by the site's number of examples). Every shared quantity goes through a SecAgg+ round
 * (protocol/secagg: signed keys, pairwise and self masks, Shamir-shared seeds); the coordinator sees masked vectors
 * and their sum only.
 */
import type nacl from 'tweetnacl';
import { createStrategy, type FitResult } from '../../coordinator/strategies/index.ts';
import {
  fitAggregateFromSum,
  fitContribution,
  fitContributionLayout,
  makeSimulatedSites,
  maxSafeScaleBits,
  packVectors,
  runSecAggRound,
  unpackVectors,
  type SecAggReply,
} from '../../protocol/secagg/index.ts';
import { jointStatisticsFromVectors, type JointTargetSite } from '../../site-agent/adapt/index.ts';
import type { WeightSet } from '../../protocol/index.ts';

export type SecurePurpose = 'statistics' | 'fit';

export interface SecureRoundHooks {
  /** Sees every message the coordinator receives in the secure rounds (tests of what it learns). */
  readonly onCoordinatorReceive?: (reply: SecAggReply, purpose: SecurePurpose) => void;
  /** The plain vectors the sites fed in (tests compare the secure sums against them). */
  readonly onSiteInputs?: (purpose: SecurePurpose, round: number, inputs: Float32Array[], sum: Float32Array) => void;
}

export interface SecureRoundConfig {
  readonly ids: readonly string[];
  readonly numClasses: number;
  /** Latent feature size (the prototypes' dimension). */
  readonly dim: number;
  /** Public bound on target slices per site (fit contributions are scaled by n_k / maxExamples). */
  readonly maxExamples: number;
  /** Public bound on target pixels per site (statistics are scaled by its inverse). */
  readonly maxPixels: number;
  readonly clip: number;
  readonly threshold?: number;
  readonly identities: readonly nacl.SignKeyPair[];
}

/** The masked sum of one vector per site (all sites must survive: the simulation has no dropouts). */
export async function secureSum(c: SecureRoundConfig, inputs: Float32Array[], purpose: SecurePurpose, hooks: SecureRoundHooks): Promise<Float32Array> {
  const quant = { clip: c.clip, scaleBits: maxSafeScaleBits(c.clip, c.ids.length) };
  const sites = makeSimulatedSites(c.ids.length, (i) => inputs[i]).map((s, i) => ({ ...s, siteId: c.ids[i], identity: c.identities[i] }));
  const r = await runSecAggRound(sites, {
    vectorLength: inputs[0].length,
    quant,
    ...(c.threshold !== undefined ? { threshold: c.threshold } : {}),
    onCoordinatorReceive: (m) => hooks.onCoordinatorReceive?.(m, purpose),
  });
  if (r.included.length !== c.ids.length) throw new Error(`secure ${purpose} sum left out ${c.ids.length - r.included.length} site(s)`);
  return r.sum;
}

/** Step 1: every site's statistics, summed securely and unscaled (prototype sums, kept class counts). */
export async function secureStatistics(c: SecureRoundConfig, joint: readonly JointTargetSite[], round: number, hooks: SecureRoundHooks): Promise<ReturnType<typeof jointStatisticsFromVectors>> {
  const scale = 1 / c.maxPixels;
  const packed = joint.map((j) => packVectors(j.statistics(scale)));
  const sum = await secureSum(c, packed.map((p) => p.vector), 'statistics', hooks);
  hooks.onSiteInputs?.('statistics', round, packed.map((p) => p.vector), sum);
  return jointStatisticsFromVectors(unpackVectors(sum, packed[0].layout), c.numClasses, c.dim, scale);
}

/**
 * Step 3: the weights of every site's `which` model (its student, or its teacher), summed securely through the
 * coordinator's secure fit path (protocol/secagg/fit-contribution.ts), turned into the next global weights by FedBN.
 * Returns the new global weights (shared tensors averaged; local ones as in `global`, never used by the sites).
 */
export async function secureFedBn(
  c: SecureRoundConfig,
  weights: readonly WeightSet[],
  numExamples: readonly number[],
  round: number,
  global: WeightSet,
  hooks: SecureRoundHooks,
  localPrefixes: readonly string[] = [],
): Promise<{ global: WeightSet; isLocal: (name: string) => boolean }> {
  const strategy = createStrategy({ name: 'fedbn' });
  // Local tensors (BN, and any `localPrefixes`) are not in the fit layout at all: the coordinator never sees them.
  const isLocal = (name: string): boolean => !(strategy.aggregatesTensor?.(name) ?? true) || localPrefixes.some((p) => name.startsWith(p));
  const spec = { tensors: global.filter((t) => !isLocal(t.name)).map((t) => ({ name: t.name, length: t.data.length })), metrics: [], maxExamples: c.maxExamples };
  const contributions = weights.map((w, i) => fitContribution(spec, new Map(w.map((t) => [t.name, t.data])), numExamples[i], {}));
  const sum = await secureSum(c, contributions, 'fit', hooks);
  hooks.onSiteInputs?.('fit', round, contributions, sum);
  if (sum.length !== fitContributionLayout(spec).totalLength) throw new Error('fit sum has the wrong length');
  const agg = fitAggregateFromSum(spec, sum);
  const virtual: FitResult = {
    siteId: 'secure-aggregate',
    weights: global.map((t) => ({ ...t, data: agg.mean.get(t.name) ?? t.data })),
    numExamples: agg.totalExamples,
    metrics: {},
    aggregateOf: [...c.ids],
  };
  const next = strategy.aggregateFit(round, [virtual], [], global);
  if (next === null) throw new Error(`round ${round}: the strategy kept the model`);
  return { global: next.weights, isLocal };
}
