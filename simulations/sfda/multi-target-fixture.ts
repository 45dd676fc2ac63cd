/**
 * Shared by multi-target.test.ts and multi-target-pooled.test.ts: a smoke-sized sfda-multi-target scenario (24 px phantom
 * slices, a depth-1 U-Net with 8 base channels, secure aggregation with clip 8 over 3 sites) and the checks both files
 * make on what the secure sums produced and what the coordinator saw. Next to the concept it serves, like
 * site-agent/adapt/toy-shift-fixture.ts (test/support/ holds the cross-process helpers).
 */
import { expect } from 'vitest';
import type { z } from 'zod';
import { maxSafeScaleBits, quantizationErrorBound, type SecAggReply } from '../../protocol/secagg/index.ts';
import { multiTargetSchema, type MultiTargetConfig } from './multi-target-config.ts';

type ScenarioInput = z.input<typeof multiTargetSchema>;

/** What a smoke scenario chooses; everything else (phantom size, model, secure aggregation bounds) is shared. */
export interface SmokeScenario {
  readonly name: string;
  readonly sourceSites: ScenarioInput['data']['sourceSites'];
  readonly targets: ScenarioInput['data']['targets'];
  readonly federated: ScenarioInput['federated'];
  readonly adapt: ScenarioInput['adapt'];
}

/** The clip of the smoke scenarios' secure aggregation (and of the quantization bound the checks use). */
export const SMOKE_CLIP = 8;

export function smokeScenario(s: SmokeScenario): MultiTargetConfig {
  return multiTargetSchema.parse({
    kind: 'sfda-multi-target',
    name: s.name,
    seeds: [1],
    data: { anatomy: 'phantom', size: 24, numClasses: 3, slicesPerCase: 4, sourceSites: s.sourceSites, targets: s.targets },
    model: { baseChannels: 8, depth: 1 },
    federated: s.federated,
    adapt: s.adapt,
    secureAggregation: { maxExamples: 64, maxPixels: 65536, clip: SMOKE_CLIP },
  });
}

type ShareInput = NonNullable<NonNullable<ScenarioInput['adapt']>['share']>;

/**
 * The pooled-mode smoke scenario: three sites on three different shifts (low-field, a custom noisy/blurred one, CT-like),
 * ratio-entropy behind a 4-knot input adapter with 2 steps, one adaptation round; `share` chooses what is pooled.
 */
export function pooledSmokeScenario(name: string, share: ShareInput): MultiTargetConfig {
  return smokeScenario({
    name,
    sourceSites: [{ shift: 'scanner-a', numCases: 3 }],
    targets: [
      { id: 'site-1', shift: 'low-field', adaptCases: 1, testCases: 1 },
      { id: 'site-2', shift: { noise: { sigma: 0.12 }, blur: { sigma: 0.8 }, resolution: { factor: 2.2 } }, adaptCases: 1, testCases: 1 },
      { id: 'site-3', shift: 'mr-to-ct', adaptCases: 1, testCases: 1 },
    ],
    federated: { rounds: 2, localEpochs: 1, batchSize: 4, lr: 0.02 },
    adapt: { rounds: 1, batchSize: 4, options: { method: 'ratio-entropy', inputAdapter: { knots: 4, steps: 2, starts: ['identity', 'negation'], randomStarts: 0 } }, share },
  });
}

/**
 * Every secure sum equals the plain sum of the sites' vectors up to the quantization error of 3 sites at clip 8.
 * `clipInputs`: compare with the sum of the inputs clipped to ±8 (what the masked path sums when inputs may exceed it).
 */
export function expectSecureSumsArePlainSums(sums: readonly { inputs: Float32Array[]; sum: Float32Array }[], clipInputs: boolean): void {
  const bound = quantizationErrorBound({ clip: SMOKE_CLIP, scaleBits: maxSafeScaleBits(SMOKE_CLIP, 3) }, 3) + 1e-6;
  const clip = (v: number): number => (clipInputs ? Math.max(-SMOKE_CLIP, Math.min(SMOKE_CLIP, v)) : v);
  for (const { inputs, sum } of sums) {
    for (let j = 0; j < sum.length; j++) {
      const plain = inputs.reduce((a, v) => a + clip(v[j]), 0);
      expect(Math.abs(sum[j] - plain)).toBeLessThanOrEqual(bound + Math.abs(plain) * 2 ** -23);
    }
  }
}

/**
 * The masked words the coordinator received look uniform over the ring: a uniform word has its top bit set with
 * probability 1/2, so the pooled fraction lies within 5 standard deviations of 1/2 (a fixed band per vector failed on
 * short statistics vectors by chance).
 */
export function expectMaskedWordsUniform(words: readonly number[]): void {
  const high = words.filter((w) => w >= 2 ** 31).length / words.length;
  expect(Math.abs(high - 0.5)).toBeLessThan(5 * Math.sqrt(0.25 / words.length));
}

/** The words of every masked vector among the replies. */
export function maskedWords(replies: readonly SecAggReply[]): number[] {
  return replies.flatMap((m) => (m.type === 'secagg/masked-vector' ? Array.from(m.masked) : []));
}

/**
 * No plain vector appears among the replies the coordinator received: the first `prefix` entries of each vector, as
 * JSON writes them, occur nowhere in the replies' JSON (typed arrays written as arrays).
 */
export function expectNoPlainVectorSeen(replies: readonly SecAggReply[], vectors: readonly Float32Array[], prefix: number): void {
  const text = JSON.stringify(replies, (_k, v) => (ArrayBuffer.isView(v) ? Array.from(v as Uint32Array) : v));
  for (const v of vectors) expect(text.includes(Array.from(v.slice(0, prefix)).join(','))).toBe(false);
}
