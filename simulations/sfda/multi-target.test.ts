import { beforeAll, describe, expect, it } from 'vitest';
import type { SecAggReply } from '../../protocol/secagg/index.ts';
import { initEngine } from '../../site-agent/engine/index.ts';
import { readFile } from 'node:fs/promises';
import { formatMultiTarget, MultiTargetError, multiTargetSchema, parseMultiTargetConfig, runMultiTarget, type MultiTargetConfig } from './multi-target.ts';
import { expectMaskedWordsUniform, expectNoPlainVectorSeen, expectSecureSumsArePlainSums, maskedWords, smokeScenario } from './multi-target-fixture.ts';

beforeAll(async () => {
  await initEngine();
});

const config: MultiTargetConfig = smokeScenario({
  name: 'smoke',
  sourceSites: [{ shift: 'scanner-a', numCases: 3 }, { shift: 'scanner-b', numCases: 3 }],
  targets: [
    { id: 'site-c', shift: 'scanner-c', adaptCases: 2, testCases: 2 },
    { id: 'site-ct', shift: 'mr-to-ct', adaptCases: 2, testCases: 2 },
    { id: 'site-lf', shift: 'low-field', adaptCases: 2, testCases: 2 },
  ],
  federated: { rounds: 4, localEpochs: 2, batchSize: 4, lr: 0.02 },
  adapt: { rounds: 2, batchSize: 4, options: { inputAdapter: { knots: 2, steps: 0, starts: ['identity', 'negation'], randomStarts: 0, selection: 'entropy-adabn' } } },
});

describe('federated multi-target adaptation', () => {
  it('the shipped scenario validates and bad ones are refused', async () => {
    const raw = JSON.parse(await readFile(new URL('../scenarios/sfda-multi-target.json', import.meta.url), 'utf8'));
    expect(parseMultiTargetConfig(raw).data.targets.length).toBeGreaterThanOrEqual(3);
    const mt = JSON.parse(await readFile(new URL('../scenarios/sfda-multi-target-mean-teacher.json', import.meta.url), 'utf8'));
    expect(parseMultiTargetConfig(mt).adapt.options).toMatchObject({ method: 'mean-teacher' });
    expect(() => parseMultiTargetConfig({ ...raw, data: { ...raw.data, targets: raw.data.targets.slice(0, 2) } })).toThrow(MultiTargetError);
    expect(() => parseMultiTargetConfig({ ...raw, secureAggregation: { ...raw.secureAggregation, clip: 0 } })).toThrow(MultiTargetError);
    // Adaptation options are strict: a typo, or a mean-teacher option given to ratio-entropy, is refused.
    expect(() => parseMultiTargetConfig({ ...raw, adapt: { ...raw.adapt, options: { ...raw.adapt.options, lrr: 0.01 } } })).toThrow(MultiTargetError);
    expect(() => parseMultiTargetConfig({ ...raw, adapt: { ...raw.adapt, options: { ...raw.adapt.options, method: 'ratio-entropy', lr: 0.01 } } })).toThrow(/ratioEntropy/);
    // The pooled curve averages restarts start by start; band-order starts differ from site to site.
    const bands = { ...raw.adapt.options, inputAdapter: { ...raw.adapt.options.inputAdapter, bandPermutations: {} } };
    expect(parseMultiTargetConfig({ ...raw, adapt: { ...raw.adapt, options: bands } }).adapt.options.inputAdapter).toMatchObject({ bandPermutations: {} });
    expect(() => parseMultiTargetConfig({ ...raw, adapt: { ...raw.adapt, options: bands, share: { inputCurve: true } } })).toThrow(/adapt\.options\.inputAdapter\.bandPermutations: share\.inputCurve pools the restarts/);
  });

  // Every local method shares different statistics (prototype sums and kept counts; predicted class mass): each goes
  // through the same secure sums.
  it.each([
    { method: 'mean-teacher', options: {}, statistics: 3 * (1 + 8 + 1) },
    { method: 'ratio-entropy', options: { method: 'ratio-entropy', classPrior: 'pooled' }, statistics: 3 },
    // With the source prior nobody reads a pooled statistic: no statistics round at all, weights only.
    { method: 'ratio-entropy (source prior)', options: { method: 'ratio-entropy' }, statistics: 0 },
  ])('$method: adapts several unlabelled sites through secure sums: the sums are right and the coordinator sees masked vectors only', async ({ options, statistics }) => {
    const seen: { purpose: string; reply: SecAggReply }[] = [];
    const rounds: { purpose: string; inputs: Float32Array[]; sum: Float32Array }[] = [];
    const cfg = multiTargetSchema.parse({ ...config, adapt: { ...config.adapt, options: { ...config.adapt.options, ...options } } });
    const r = await runMultiTarget(cfg, {
      onCoordinatorReceive: (reply, purpose) => seen.push({ purpose, reply }),
      onSiteInputs: (purpose, _round, inputs, sum) => rounds.push({ purpose, inputs, sum }),
    });
    expect(r.sites.map((s) => s.id)).toEqual(['site-c', 'site-ct', 'site-lf']);
    for (const s of r.sites) for (const v of [...s.alone, ...s.federated, ...s.sourceOnly]) expect(Number.isFinite(v)).toBe(true);
    expect(formatMultiTarget(r)).toContain('federated - alone');
    // Secure sums per round (statistics when the method reads them, then weights), each equal to the plain sum of the sites' vectors up to
    // the quantization error.
    const perRound = statistics > 0 ? ['statistics', 'fit'] : ['fit'];
    expect(rounds.map((x) => x.purpose)).toEqual([...perRound, ...perRound]);
    for (const x of rounds.filter((x) => x.purpose === 'statistics')) expect(x.sum.length).toBe(statistics);
    expectSecureSumsArePlainSums(rounds, true);
    // What reached the coordinator: masked words spread over the whole ring, unrelated to any site's vector.
    const replies = seen.map((x) => x.reply);
    expect(replies.filter((r) => r.type === 'secagg/masked-vector')).toHaveLength(perRound.length * 2 * 3);
    const words = maskedWords(replies);
    expect(words.length).toBeGreaterThan(100);
    expectMaskedWordsUniform(words);
    // No plaintext statistics vector appears among the messages the coordinator received.
    expectNoPlainVectorSeen(replies, rounds.filter((x) => x.purpose === 'statistics').flatMap((x) => x.inputs), 4);
  }, 600_000);
});
