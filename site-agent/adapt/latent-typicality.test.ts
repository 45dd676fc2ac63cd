import { describe, expect, it } from 'vitest';
import { Rng } from '../../protocol/common/index.ts';
import { SOURCE_STATS_KIND, SOURCE_STATS_VERSION, type SourceStats } from '../../protocol/contracts/index.ts';
import { accumulateMoments, cholesky, emptyMoments, sampleGaussian, symmetrizeMoments } from './gaussian.ts';
import { chiSquareQuantile, classMean, pixelMean, sourceClassGaussians, TypicalityAccumulator } from './latent-typicality.ts';

const DIM = 3;
const MEANS = [
  [0, 0, 0],
  [4, -2, 1],
];
const COV = Float64Array.from([1, 0.5, 0, 0.5, 2, 0.3, 0, 0.3, 0.5]);

/** `n` features of class `c` (its source Gaussian), shifted by `shift` along every axis. */
function sample(c: number, n: number, seed: number, shift = 0): Float32Array {
  const x = new Float32Array(n * DIM);
  sampleGaussian({ mean: Float64Array.from(MEANS[c], (v) => v + shift), cov: COV, chol: cholesky(COV, DIM) }, DIM, n, new Rng(seed), x);
  return x;
}

/** A package whose classes' confident moments are those of 5000 samples each (class 2: too few pixels for a Gaussian). */
function pkg(): SourceStats {
  const classes = [0, 1, 2].map((c) => {
    const m = emptyMoments(DIM);
    const n = c < 2 ? 5000 : 2;
    accumulateMoments(m, c < 2 ? sample(c, n, 10 + c) : new Float32Array(n * DIM), DIM, new Uint8Array(n).fill(1));
    symmetrizeMoments(m, DIM);
    return { labelCount: n, confident: m, labelled: m };
  });
  return { kind: SOURCE_STATS_KIND, version: SOURCE_STATS_VERSION, numClasses: 3, latentDim: DIM, confidence: 0.97, numSites: 1, bn: {}, classes };
}

describe('latent-feature typicality', () => {
  it('scores about 1 (d²/d) for features of the predicted class, and more when they are shifted off it; agreement with the Gaussians', () => {
    const g = sourceClassGaussians(pkg());
    expect(g[2]).toBeNull();
    const typical = new TypicalityAccumulator(g, DIM);
    typical.add(sample(1, 4000, 7), new Uint8Array(4000).fill(1));
    const t = typical.result();
    expect(t.meanDistance[1]).toBeGreaterThan(0.9);
    expect(t.meanDistance[1]).toBeLessThan(1.1);
    expect(t.atypicalFraction[1]).toBeLessThan(0.02);
    expect(t.gaussianAgreement[1]).toBeGreaterThan(0.99);
    expect(t.meanDistance[0]).toBeNaN();
    const shifted = new TypicalityAccumulator(g, DIM);
    shifted.add(sample(1, 4000, 7, 1.5), new Uint8Array(4000).fill(1));
    expect(shifted.result().meanDistance[1]).toBeGreaterThan(2);
    expect(shifted.result().atypicalFraction[1]).toBeGreaterThan(0.1);
    // Class 1's features predicted as class 0: far from class 0's Gaussian.
    const wrong = new TypicalityAccumulator(g, DIM);
    wrong.add(sample(1, 1000, 8), new Uint8Array(1000));
    expect(wrong.result().meanDistance[0]).toBeGreaterThan(5);
    // ... and the source Gaussians read them as class 1: the generative reading disagrees with the prediction.
    expect(wrong.result().gaussianAgreement[0]).toBeLessThan(0.01);
    // Pixels predicted as a class without a Gaussian are skipped.
    const skipped = new TypicalityAccumulator(g, DIM);
    skipped.add(sample(1, 10, 9), new Uint8Array(10).fill(2));
    expect(skipped.result().meanDistance).toEqual([NaN, NaN, NaN]);
  });

  it('aggregates over classes and pixels, and the chi-square quantile matches tables', () => {
    expect(classMean([1, NaN, 3])).toBe(2);
    expect(classMean(undefined)).toBeNaN();
    expect(pixelMean([1, 3, NaN], [0.75, 0.25, 0])).toBe(1.5);
    expect(chiSquareQuantile(3)).toBeCloseTo(11.34, 0);
    expect(chiSquareQuantile(16)).toBeCloseTo(32.0, 0);
  });

  it('skips a class whose (e.g. DP-noised) moments give no positive-definite covariance', () => {
    const p = pkg();
    const bad = { ...p.classes[0].confident, sumOuter: p.classes[0].confident.sumOuter.map((v, i) => (i === 0 ? -1e6 : v)) };
    const g = sourceClassGaussians({ ...p, classes: [{ ...p.classes[0], confident: bad, labelled: bad }, ...p.classes.slice(1)] });
    expect(g[0]).toBeNull();
    expect(g[1]).not.toBeNull();
  });
});
