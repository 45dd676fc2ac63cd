import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WeightSet } from '../../protocol/index.ts';
import type { SliceDataset } from '../data/index.ts';
import type { UNet } from '../model/index.ts';
import { adapt, applyCurve, fitInputAdapter, toUnlabeled, type SourceStats } from './index.ts';
import { Rng } from '../../protocol/common/index.ts';
import { makeNestedBoxes, meanDice, toySourceSetup, TOY_SIZE } from './toy-shift-fixture.ts';

let unet: UNet;
let stats: SourceStats;
let sourceWeights: WeightSet;
let reordered: SliceDataset;

beforeAll(async () => {
  ({ unet, weights: sourceWeights, stats } = await toySourceSetup());
  // A contrast reordering: the ring (0.5 at the source) becomes the brightest tissue (1.0), the core (1.0) drops to
  // 0.5, the background stays dark. Neither y = x nor y = -x maps this back.
  const t = makeNestedBoxes(16, TOY_SIZE, 7);
  reordered = { ...t, images: t.images.map((v) => (v < 0.25 ? v : v < 0.75 ? v + 0.5 : v - 0.5)) };
}, 600_000);

afterAll(() => unet?.dispose());

describe('input adapter', () => {
  it('recovers a non-monotone contrast reordering that the polarity check cannot, label-free', () => {
    const target = toUnlabeled(reordered);
    unet.setWeights(sourceWeights);
    adapt('adabn', unet, target, stats, { inputPolarities: [1, -1] });
    const polarity = meanDice(unet, target, reordered.labels, 3);
    unet.setWeights(sourceWeights);
    const report = adapt('adabn', unet, target, stats, { seed: 1, inputAdapter: {} });
    expect(report.inputCurve).toBeDefined();
    const adapted = meanDice(unet, applyCurve(report.inputCurve!, target), reordered.labels, 3);
    // The adapted model expects its inputs through the curve: without it, it is scored on the wrong contrast.
    const withoutCurve = meanDice(unet, target, reordered.labels, 3);
    expect(polarity).toBeLessThan(0.6);
    expect(adapted).toBeGreaterThan(0.85);
    expect(adapted).toBeGreaterThan(withoutCurve + 0.2);
    // The recovered curve brightens the dark-after-shift core (~0.5) above the ring (~1.0 after the shift), as the source had it.
    const c = report.inputCurve!;
    const at = (x: number): number => {
      let s = 0;
      while (s < c.knots.length - 2 && c.knots[s + 1] < x) s++;
      const t = (x - c.knots[s]) / (c.knots[s + 1] - c.knots[s]);
      return (1 - t) * c.values[s] + t * c.values[s + 1];
    };
    expect(at(0.5)).toBeGreaterThan(at(1.0));
  });

  it('leaves the model as given, keeps the start with the lowest objective, and says so', () => {
    unet.setWeights(sourceWeights);
    const fit = fitInputAdapter(unet, toUnlabeled(reordered), stats, { seed: 3, steps: 5, randomStarts: 2, bandPermutations: false });
    expect(unet.getWeights()).toEqual(sourceWeights);
    expect(fit.candidates.map((c) => c.start)).toEqual(['identity', 'negation', 'random', 'random']);
    const best = Math.min(...fit.candidates.map((c) => c.score));
    expect(fit.candidates[fit.chosen].score).toBe(best);
    expect(fit.curve).toBe(fit.candidates[fit.chosen].curve);
    expect(fit.note).toMatch(/^input adapter \(K=8, 5 steps\): kept start \d \((identity|negation|random)\)/);
  });

  it('wide search: the narrow pick is unchanged by it, and the wide pick replaces it only past the objective and entropy guard', () => {
    const t = toUnlabeled(reordered);
    const base = { seed: 3, steps: 5, randomStarts: 2, bandPermutations: false } as const;
    unet.setWeights(sourceWeights);
    const narrow = fitInputAdapter(unet, t, stats, base);
    const fit = fitInputAdapter(unet, t, stats, { ...base, wideSearch: { screen: 16, starts: 3, steps: 6, pruneAt: 2, keep: 1 } });
    expect(unet.getWeights()).toEqual(sourceWeights);
    // Narrow candidates first, bit for bit the same; then the wide search's `keep` survivors.
    expect(fit.candidates.slice(0, 4).map((c) => c.score)).toEqual(narrow.candidates.map((c) => c.score));
    expect(fit.narrow?.curve).toEqual(narrow.curve);
    expect(fit.narrow?.note).toBe(narrow.note);
    expect(fit.candidates.slice(4).map((c) => c.search)).toEqual(['wide']);
    expect(fit.note).toMatch(/wide search \(16 screened, 3 refined 2 steps, best 1 to 6\): kept (its curve|the narrow pick)/);
    const wide = fit.candidates[4];
    if (fit.chosen === 4) expect(wide.score).toBeLessThan(narrow.candidates[narrow.chosen].score);
    else expect(fit.chosen).toBe(narrow.chosen);
    if (wide.score >= narrow.candidates[narrow.chosen].score) expect(fit.note).toMatch(/not below the narrow pick's/);
    else expect(fit.note).toMatch(/entropy after AdaBN [0-9.]+ (<=|>) [0-9.]+/);
  });

  it('denoise: on a noisy target it takes a Gaussian pre-filter, on a clean one none (and the fit is unchanged)', () => {
    const clean = makeNestedBoxes(16, TOY_SIZE, 7);
    const rng = new Rng(11);
    // A low-field-like scanner: the same anatomy under 6x the source's thermal noise.
    const noisy = { ...clean, images: clean.images.map((v) => v + 0.3 * rng.normal()) };
    const base = { seed: 3, steps: 5, randomStarts: 1 };
    unet.setWeights(sourceWeights);
    const onNoisy = fitInputAdapter(unet, toUnlabeled(noisy), stats, { ...base, denoise: {} });
    expect(unet.getWeights()).toEqual(sourceWeights);
    expect(onNoisy.curve.prefilter?.kind).toBe('gaussian');
    expect(onNoisy.curve.prefilter!.sigma).toBeGreaterThan(0);
    expect(onNoisy.note).toMatch(/; denoise: Gaussian σ [0-9.]+ px, objective per σ \[σ 0 [0-9.]+, σ 0.5 /);
    const plain = fitInputAdapter(unet, toUnlabeled(clean), stats, base);
    const onClean = fitInputAdapter(unet, toUnlabeled(clean), stats, { ...base, denoise: {} });
    expect(onClean.curve.prefilter).toBeUndefined();
    expect(onClean.curve).toEqual(plain.curve);
    expect(onClean.note).toMatch(/; denoise: no filter/);
    // A grid without 0 forces the filter (for measuring what each σ does).
    expect(fitInputAdapter(unet, toUnlabeled(clean), stats, { ...base, denoise: { sigmas: [0.5], steps: 1 } }).curve.prefilter).toEqual({ kind: 'gaussian', sigma: 0.5 });
  });

  it('refuses bad options with typed errors', () => {
    const t = toUnlabeled(reordered);
    for (const bad of [{ knots: 1 }, { steps: -1 }, { lr: 0 }, { firstLayer: 99 }, { selection: 'best' }, { starts: [], randomStarts: 0 }, { priorWeight: -1 }, { wideSearch: { screen: 0 } }, { wideSearch: { steps: 4, pruneAt: 5 } }, { denoise: { sigmas: [] } }, { denoise: { sigmas: [-1] } }, { denoise: { margin: 1 } }]) {
      expect(() => fitInputAdapter(unet, t, stats, bad as never)).toThrow(expect.objectContaining({ code: 'BAD_OPTION' }));
    }
  });
});
