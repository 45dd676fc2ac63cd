import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { SliceDataset } from '../data/slice-dataset.ts';
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { initEngine } from '../engine/index.ts';
import { createUNet, type UNet } from '../model/index.ts';
import {
  ADAPT_METHODS,
  AdaptError,
  adapt,
  fitInputAdapter,
  POLARITY_CHECK,
  computeSourceStats,
  fitSourceGmm,
  judgeAdaptation,
  labelFreeScores,
  SAFEGUARD_FALLBACK_NOTE,
  loadSourceStats,
  poolSourceStats,
  saveSourceStats,
  toUnlabeled,
  type SourceStats,
} from './index.ts';
import { makeNestedBoxes, meanDice, trainToySource, TOY_SIZE } from './toy-shift-fixture.ts';

// One tiny source model shared by all tests (training dominates the file's run time).
let unet: UNet;
let source: SliceDataset;
let target: SliceDataset;
let stats: SourceStats;
let sourceWeights: WeightSet;
let unadaptedDice: number;

beforeAll(async () => {
  await initEngine();
  source = makeNestedBoxes(16, TOY_SIZE, 1);
  // Target scanner: gain 0.3, offset +1 (intensities the source model never saw).
  target = makeNestedBoxes(16, TOY_SIZE, 2, 0.3, 1.0);
  unet = await trainToySource(source);
  sourceWeights = unet.getWeights();
  stats = computeSourceStats(unet, source);
  unadaptedDice = meanDice(unet, toUnlabeled(target), target.labels, 3);
}, 600_000);

afterAll(() => unet?.dispose());

describe('gmm-swd options', () => {
  // The model is shared by the whole file: give it back unadapted.
  afterEach(() => unet.setWeights(sourceWeights));

  it('trainablePrefixes adapts only the named parameters, and an unmatched prefix is a typed error', () => {
    unet.setWeights(sourceWeights);
    const before = new Map(unet.getWeights().map((t) => [t.name, t.data]));
    adapt('gmm-swd', unet, toUnlabeled(target), stats, { seed: 2, epochs: 1, batchSize: 8, lr: 0.01, trainablePrefixes: ['enc1.'], bnMode: 'batch' });
    for (const t of unet.getWeights()) {
      if (!unet.trainable.has(t.name)) continue;
      const changed = t.data.some((v, i) => v !== before.get(t.name)![i]);
      expect([t.name, changed]).toEqual([t.name, t.name.startsWith('enc1.')]);
    }
    expect(() => adapt('gmm-swd', unet, toUnlabeled(target), stats, { trainablePrefixes: ['nope.'] })).toThrow(AdaptError);
  });

  it('restarts keep the run with the lowest target SWD and say so', () => {
    unet.setWeights(sourceWeights);
    const report = adapt('gmm-swd', unet, toUnlabeled(target), stats, { seed: 3, epochs: 1, batchSize: 8, restarts: 2 });
    const note = report.notes.find((n) => n.startsWith('2 restarts'));
    expect(note).toBeDefined();
    const swds = [...note!.matchAll(/\d+\.\d+/g)].map((m) => Number(m[0]));
    const kept = Number(/kept restart (\d)/.exec(note!)![1]);
    expect(swds[kept]).toBe(Math.min(...swds));
  });

  it('selfTrainEpochs adds class-balanced self-training epochs after the alignment', () => {
    unet.setWeights(sourceWeights);
    const report = adapt('gmm-swd', unet, toUnlabeled(target), stats, { seed: 3, epochs: 1, batchSize: 8, selfTrainEpochs: 1, pseudoLabelKeep: 0.4 });
    expect(report.steps).toBe(2 * Math.ceil(target.n / 8));
    const frac = Number(/pseudo-labelled fraction ([\d.]+)/.exec(report.notes.join(' '))![1]);
    // The top 40% of each class's pixels (ties at a class threshold may add a few).
    expect(frac).toBeGreaterThanOrEqual(0.4);
    expect(frac).toBeLessThan(0.6);
    expect(() => adapt('gmm-swd', unet, toUnlabeled(target), stats, { selfTrainEpochs: -1 })).toThrow(AdaptError);
  });
});

describe('toy shifted problem', () => {
  it('the source model works on the source and fails on the shifted target', () => {
    expect(meanDice(unet, toUnlabeled(source), source.labels, 3)).toBeGreaterThan(0.8);
    expect(unadaptedDice).toBeLessThan(0.6);
  });

  it.each(ADAPT_METHODS)('%s improves target Dice over no adaptation', (method) => {
    unet.setWeights(sourceWeights);
    const report = adapt(method, unet, toUnlabeled(target), stats, { seed: 1, epochs: 2, batchSize: 8 });
    const dice = meanDice(unet, toUnlabeled(target), target.labels, 3);
    expect(report.method).toBe(method);
    expect(dice).toBeGreaterThan(unadaptedDice + 0.1);
  });
});

describe('input polarity check (the input adapter with K = 2, no steps)', () => {
  afterEach(() => unet.setWeights(sourceWeights));

  it('picks the negation on a contrast-inverted target and the identity on an upright one, leaving the model untouched', () => {
    // Inverted scanner: x -> 1 - x (background bright, core dark).
    const inverted = makeNestedBoxes(16, TOY_SIZE, 4, -1, 1);
    const upright = makeNestedBoxes(16, TOY_SIZE, 5);
    unet.setWeights(sourceWeights);
    const inv = fitInputAdapter(unet, toUnlabeled(inverted), stats, POLARITY_CHECK);
    expect(inv.candidates.map((c) => c.start)).toEqual(['identity', 'negation']);
    expect(inv.candidates[inv.chosen].start).toBe('negation');
    expect(inv.curve.values).toEqual(inv.curve.knots.map((x) => -x));
    expect(unet.getWeights()).toEqual(sourceWeights);
    expect(fitInputAdapter(unet, toUnlabeled(upright), stats, POLARITY_CHECK).candidates[0].start).toBe('identity');
    expect(fitInputAdapter(unet, toUnlabeled(upright), stats, POLARITY_CHECK).chosen).toBe(0);
  });

  it('adapt() folds a chosen flip into the first convolution, runs the method from it and says so; the check lifts AdaBN on an inverted target', () => {
    const inverted = makeNestedBoxes(16, TOY_SIZE, 4, -1, 1);
    unet.setWeights(sourceWeights);
    adapt('adabn', unet, toUnlabeled(inverted), stats, {});
    const plain = meanDice(unet, toUnlabeled(inverted), inverted.labels, 3);
    unet.setWeights(sourceWeights);
    const report = adapt('adabn', unet, toUnlabeled(inverted), stats, { inputPolarities: [1, -1] });
    const checked = meanDice(unet, toUnlabeled(inverted), inverted.labels, 3);
    expect(report.notes[0]).toMatch(/^input polarity -1 \(input adapter \(K=2, 0 steps\): kept start 1 \(negation\); entropy after AdaBN per start \[identity [\d.]+, negation [\d.]+\]\)$/);
    expect(report.inputCurve).toBeUndefined();
    expect(Array.from(unet.getWeights().find((t) => t.name === 'enc1.conv1.w')!.data)).toEqual(Array.from(sourceWeights.find((t) => t.name === 'enc1.conv1.w')!.data, (v) => -v));
    expect(checked).toBeGreaterThan(plain + 0.2);
    expect(() => adapt('adabn', unet, toUnlabeled(inverted), stats, { inputPolarities: [1, 2] })).toThrow(AdaptError);
  });
});

describe('do-no-harm safeguard', () => {
  afterEach(() => unet.setWeights(sourceWeights));

  it('is on by default: keeps a helpful adaptation, rejects a harmful one (the model restored, the code in the note); off with safeguard: false', () => {
    unet.setWeights(sourceWeights);
    const kept = adapt('adabn', unet, toUnlabeled(target), stats, { seed: 1 });
    expect(kept.safeguard?.keep).toBe(true);
    expect(kept.notes.at(-1)).toMatch(/^safeguard: kept \(prior KL /);
    expect(meanDice(unet, toUnlabeled(target), target.labels, 3)).toBeGreaterThan(unadaptedDice + 0.1);
    // A destructive run on the source's own domain: entropy minimisation with a huge step collapses the predictions.
    const upright = makeNestedBoxes(16, TOY_SIZE, 5);
    unet.setWeights(sourceWeights);
    const harmed = adapt('tent', unet, toUnlabeled(upright), stats, { seed: 1, epochs: 3, lr: 5, batchSize: 8, safeguard: false });
    const harmedDice = meanDice(unet, toUnlabeled(upright), upright.labels, 3);
    unet.setWeights(sourceWeights);
    const sourceDice = meanDice(unet, toUnlabeled(upright), upright.labels, 3);
    expect(harmedDice).toBeLessThan(sourceDice - 0.2);
    expect(harmed.safeguard).toBeUndefined();
    const guarded = adapt('tent', unet, toUnlabeled(upright), stats, { seed: 1, epochs: 3, lr: 5, batchSize: 8 });
    expect(guarded.safeguard?.keep).toBe(false);
    expect(guarded.safeguard?.code).toBe('FEATURES_FARTHER_FROM_SOURCE');
    expect(guarded.notes.filter((n) => n.startsWith(SAFEGUARD_FALLBACK_NOTE))).toEqual([expect.stringMatching(/^safeguard: fell back to the unadapted model \[FEATURES_FARTHER_FROM_SOURCE\]: the target's features moved away /)]);
    expect(unet.getWeights()).toEqual(sourceWeights);
  });

  it('takes the caller\'s unadaptedScores as its "before" instead of scoring the unadapted model again', () => {
    const t = toUnlabeled(target);
    unet.setWeights(sourceWeights);
    const before = labelFreeScores(unet, t, stats, undefined, 1);
    const own = adapt('tent', unet, t, stats, { seed: 1, epochs: 1, batchSize: 8 });
    unet.setWeights(sourceWeights);
    const given = adapt('tent', unet, t, stats, { seed: 1, epochs: 1, batchSize: 8, unadaptedScores: before });
    expect(own.safeguard?.keep).toBe(true);
    expect(given.safeguard).toEqual(own.safeguard);
    // The given scores are the ones judged: a "before" whose features sat on the source's makes the same run fall back.
    unet.setWeights(sourceWeights);
    const onSource = { ...before, bnKl: before.bnKl?.map(() => 0) };
    const judged = adapt('tent', unet, t, stats, { seed: 1, epochs: 1, batchSize: 8, unadaptedScores: onSource });
    expect(judged.safeguard?.before).toEqual(onSource);
    expect(judged.safeguard?.code).toBe('FEATURES_FARTHER_FROM_SOURCE');
  });

  it('never rejects plain AdaBN for moving the features from a package computed under miscalibrated running statistics', () => {
    // An untrained model: its running statistics (0, 1) are not its data's, so the package's deeper moments differ from
    // what the same data gives once AdaBN normalises properly (about 2 nats); AdaBN is the fix, not a harm.
    const fresh = createUNet({ inChannels: 1, numClasses: 3, baseChannels: 4, depth: 1 }, 5);
    try {
      const ds = makeNestedBoxes(16, TOY_SIZE, 7);
      const own = computeSourceStats(fresh, ds);
      const r = adapt('adabn', fresh, toUnlabeled(ds), own, { seed: 1 });
      expect(r.safeguard?.keep).toBe(true);
    } finally {
      fresh.dispose();
    }
  });

  it('judges by a vanished class, or by entropy and consistency together; a prior-KL rise alone only when asked', () => {
    const s = (entropy: number, priorKl: number, consistency: number, proportions?: number[]) => ({ entropy, priorKl, consistency, ...(proportions ? { proportions, priors: [0.7, 0.2, 0.1] } : {}) });
    // Confidently wrong before (an inverted target): entropy rises, but proportions and stability improve.
    expect(judgeAdaptation(s(0, 0.47, 0), s(0.006, 0.0005, 0.94)).keep).toBe(true);
    // Farther from the priors: kept by default (a 4-volume target's proportions differ from the pooled priors).
    expect(judgeAdaptation(s(0.1, 0.01, 0.9), s(0.05, 0.05, 0.95)).keep).toBe(true);
    expect(judgeAdaptation(s(0.1, 0.01, 0.9), s(0.05, 0.05, 0.95), { rejectOnPriorKl: true }).code).toBe('FARTHER_FROM_PRIORS');
    expect(judgeAdaptation(s(0.1, 0.01, 0.9), s(0.2, 0.01, 0.8)).code).toBe('LESS_CERTAIN_AND_LESS_STABLE');
    expect(judgeAdaptation(s(0.1, 0.01, 0.9), s(0.2, 0.01, 0.9)).keep).toBe(true);
    expect(judgeAdaptation(s(0.1, 0.01, 0.9), s(0.1, 0.01, 0.8)).keep).toBe(true);
    expect(judgeAdaptation(s(0.1, NaN, 0.9), s(0.1, NaN, 0.9)).keep).toBe(true);
    // Collapsed before (one class everywhere: certain, stable, far from the priors): proportions recovering vouch.
    expect(judgeAdaptation(s(0.01, 2.0, 1), s(0.1, 0.02, 0.85)).keep).toBe(true);
    // A class (prior 0.1) predicted in 8% of pixels before and 0.5% after vanished, however certain the model got.
    expect(judgeAdaptation(s(0.1, 0.01, 0.9, [0.72, 0.2, 0.08]), s(0.01, 0.2, 0.95, [0.795, 0.2, 0.005])).code).toBe('CLASS_VANISHED');
    // The features pushed away from the source BN statistics (mean over layers, nats), even with better scores otherwise.
    const bn = (bnKl: number[]) => ({ ...s(0.1, 0.01, 0.9), bnKl });
    expect(judgeAdaptation(bn([0.05, 0.15]), { ...bn([0.2, 0.25]), entropy: 0.05 }).code).toBe('FEATURES_FARTHER_FROM_SOURCE');
    expect(judgeAdaptation(bn([0.05, 0.15]), bn([0.1, 0.15])).keep).toBe(true);
    // A class vanished, but the features came back to the source statistics (mricron inversion 108: 0.0466 -> 0.005):
    // the unadapted model was out of its regime and its class shares are no evidence; kept, and the note says so.
    const gone = (bnKl: number[], proportions: number[]) => ({ ...s(0.1, 0.01, 0.9, proportions), bnKl });
    const back = judgeAdaptation(gone([0.04, 0.05], [0.72, 0.2, 0.08]), gone([0.005, 0.005], [0.795, 0.2, 0.005]));
    expect(back.keep).toBe(true);
    expect(back.reason).toContain('class 2 no longer predicted, not judged');
    // Only about half as far: not enough (the default ratio is 1/4), and a ratio of 0 keeps the rule always on.
    expect(judgeAdaptation(gone([0.04, 0.05], [0.72, 0.2, 0.08]), gone([0.02, 0.02], [0.795, 0.2, 0.005])).code).toBe('CLASS_VANISHED');
    expect(judgeAdaptation(gone([0.04, 0.05], [0.72, 0.2, 0.08]), gone([0.005, 0.005], [0.795, 0.2, 0.005]), { vanishedBnKlRatio: 0 }).code).toBe('CLASS_VANISHED');
    // Already absent before (< a tenth of its prior): not the adaptation's doing.
    expect(judgeAdaptation(s(0.1, 0.01, 0.9, [0.795, 0.2, 0.005]), s(0.05, 0.2, 0.95, [0.797, 0.2, 0.003])).keep).toBe(true);
  });
});

describe('target labels never reach adaptation', () => {
  it('runs identically when the dataset\'s labels throw on access', () => {
    const poisoned = { ...target } as Record<string, unknown>;
    Object.defineProperty(poisoned, 'labels', {
      get() {
        throw new Error('target labels were read');
      },
    });
    const other = { ...target, labels: new Uint8Array(target.labels.length).fill(2) };
    const run = (ds: SliceDataset): Float32Array[] => {
      unet.setWeights(sourceWeights);
      adapt('osuda', unet, toUnlabeled(ds), stats, { seed: 4, epochs: 2 });
      return unet.getWeights().map((t) => t.data);
    };
    const a = run(poisoned as unknown as SliceDataset);
    const b = run(other);
    expect(a).toEqual(b);
    // gmm-swd as well (it uses predicted proportions, not labels)
    unet.setWeights(sourceWeights);
    expect(() => adapt('gmm-swd', unet, toUnlabeled(poisoned as unknown as SliceDataset), stats, { seed: 4, epochs: 1 })).not.toThrow();
    // ... including the benchmark's options: first-block alignment, then self-training on its own pseudo-labels.
    unet.setWeights(sourceWeights);
    const opts = { seed: 4, epochs: 1, trainablePrefixes: ['enc1.'], bnMode: 'batch', selfTrainEpochs: 2, selfTrainPrefixes: [''], pseudoLabelMemory: true, restarts: 2, inputPolarities: [1, -1] } as const;
    expect(() => adapt('gmm-swd', unet, toUnlabeled(poisoned as unknown as SliceDataset), stats, opts)).not.toThrow();
    unet.setWeights(sourceWeights);
  });
});

describe('source statistics package', () => {
  it('pools by addition and round-trips through a versioned JSON file', async () => {
    unet.setWeights(sourceWeights);
    const half = { ...source, n: 8, images: source.images.slice(0, 8 * TOY_SIZE * TOY_SIZE), labels: source.labels.slice(0, 8 * TOY_SIZE * TOY_SIZE), caseIds: source.caseIds.slice(0, 8) };
    const rest = { ...source, n: 8, images: source.images.slice(8 * TOY_SIZE * TOY_SIZE), labels: source.labels.slice(8 * TOY_SIZE * TOY_SIZE), caseIds: source.caseIds.slice(8) };
    const pooled = poolSourceStats([computeSourceStats(unet, half), computeSourceStats(unet, rest)]);
    expect(pooled.numSites).toBe(2);
    expect(pooled.classes.map((c) => c.labelCount)).toEqual(stats.classes.map((c) => c.labelCount));
    const layer = Object.keys(stats.bn)[0];
    pooled.bn[layer].sum.forEach((v, i) => expect(v).toBeCloseTo(stats.bn[layer].sum[i], 1));
    const dir = await mkdtemp(join(tmpdir(), 'fedsfda-stats-'));
    try {
      await saveSourceStats(pooled, join(dir, 's.json'));
      expect(await loadSourceStats(join(dir, 's.json'))).toEqual(pooled);
      await writeFile(join(dir, 'v2.json'), JSON.stringify({ ...pooled, version: 2 }));
      await expect(loadSourceStats(join(dir, 'v2.json'))).rejects.toMatchObject({ code: 'STATS_VERSION' });
      await writeFile(join(dir, 'bad.json'), JSON.stringify({ ...pooled, latentDim: 3 }));
      await expect(loadSourceStats(join(dir, 'bad.json'))).rejects.toMatchObject({ code: 'STATS_FILE_INVALID' });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it('GMM fit falls back to all labelled pixels when a class has too few confident ones, and says so', () => {
    const gmm = fitSourceGmm(stats, { minPixels: 1e9 });
    expect(gmm.sources).toEqual(['labelled', 'labelled', 'labelled']);
    expect(gmm.notes.join(' ')).toMatch(/class 0: only \d+ confident/);
  });

  it('refuses an unknown method and gmm-swd without statistics', () => {
    expect(() => adapt('bogus' as never, unet, toUnlabeled(target), stats)).toThrow(AdaptError);
    expect(() => adapt('gmm-swd', unet, toUnlabeled(target), null)).toThrow(/source statistics/);
  });
});
