/**
 * An upper bound for every input-intensity method on a suite family: the intensity curve fitted WITH the test labels
 * (a label oracle, not a method). The frozen source model sees g(x), g a free piecewise-linear curve (K knots,
 * intensity-curve.ts); the K values are fitted by Adam on the supervised cross-entropy of the very test cases that are
 * scored, from the identity and from random starts, then scored as is and after AdaBN on the curve's output. No
 * label-free input adapter can pick a better curve of the same form than the one these labels pick, so when the
 * oracle curve stays below the supervised reference, the family's gap is out of reach of input adaptation alone.
 * `--band-starts STEPS` adds a search over tissue orders: the curve on the target's band knots (two per multi-level Otsu
 * band, band-permutation.ts) from the identity and from every band order (24 for 4 bands), STEPS Adam steps each. The
 * random-permutation starts alone can miss an order a label-free band start finds (session 8: mricron reorder 101).
 * Tuning seeds only (it refuses 1-3), source models from the tuning cache of run-suite.ts:
 *   npx tsx simulations/sfda/oracle-curve.ts --datasets phantom --families reorder --seeds 101,102,103 --cache DIR
 * `--supervised no` skips the target-supervised reference (it does not depend on the source model: suite logs have it).
 */
import * as tf from '@tensorflow/tfjs-core';
import { readFile } from 'node:fs/promises';
import { Rng } from '../../protocol/common/index.ts';
import { adaptAdaBN, applyCurve, bandKnots, bandPermutations, basisMatrix, evaluateSegmentation, intensityBands, makeCurve, permutationValues, quantileKnots, toUnlabeled, type IntensityCurve } from '../../site-agent/adapt/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { createUNet, type UNet } from '../../site-agent/model/index.ts';
import { benchmarkSiteData } from './benchmark-site.ts';
import { diskSourceCache } from './run-suite.ts';
import { parseSfdaSuiteConfig, SfdaSuiteError } from './suite-config.ts';
import { configuredRecipe, datasetModel, federatedCacheKey, trainTargetSupervised } from './suite-run.ts';

function dice(unet: UNet, ds: SliceDataset, curve?: IntensityCurve): number {
  const images = toUnlabeled(ds);
  return evaluateSegmentation(unet, curve ? applyCurve(curve, images) : images, ds.labels, ds.sliceThickness).summary.mean.dice.mean;
}

/** Adam on the curve values against the labels of `ds` (network frozen, source BN statistics). */
function fitOracle(unet: UNet, ds: SliceDataset, knots: number[], start: number[], steps: number, rng: Rng): IntensityCurve {
  const k = knots.length;
  const px = ds.height * ds.width;
  const basis = basisMatrix(knots, ds.images);
  const v = tf.variable(tf.tensor1d(start), true);
  const opt = tf.train.adam(0.05);
  const numClasses = unet.config.numClasses;
  for (let s = 0; s < steps; s++) {
    const idx = Array.from({ length: Math.min(8, ds.n) }, () => rng.int(ds.n));
    const rows = new Float32Array(idx.length * px * k);
    const lab = new Int32Array(idx.length * px);
    idx.forEach((j, i) => {
      rows.set(basis.subarray(j * px * k, (j + 1) * px * k), i * px * k);
      for (let p = 0; p < px; p++) lab[i * px + p] = ds.labels[j * px + p];
    });
    const cost = opt.minimize(() => {
      const x = tf.reshape(tf.matMul(tf.tensor2d(rows, [idx.length * px, k]), tf.reshape(v, [k, 1])), [idx.length, ds.height, ds.width, 1]) as tf.Tensor4D;
      const logits = unet.forward(x, { bn: 'running' }).logits;
      return tf.losses.softmaxCrossEntropy(tf.oneHot(tf.tensor1d(lab, 'int32'), numClasses), tf.reshape(logits, [-1, numClasses])) as tf.Scalar;
    }, true, [v]);
    cost?.dispose();
  }
  const values = Array.from(v.dataSync());
  v.dispose();
  opt.dispose();
  return makeCurve(knots, values);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k: string): string | undefined => {
    const i = process.argv.indexOf(k);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const seeds = (arg('--seeds') ?? '101,102,103').split(',').map(Number);
  if (seeds.some((s) => s >= 1 && s <= 3)) throw new SfdaSuiteError('oracle-curve: seeds 1-3 are the reported seeds; use tuning seeds');
  const { initEngine } = await import('../../site-agent/engine/index.ts');
  await initEngine();
  const cfg = parseSfdaSuiteConfig(JSON.parse(await readFile(arg('--config') ?? 'simulations/scenarios/sfda-suite.json', 'utf8')));
  const cache = diskSourceCache(arg('--cache') ?? '/tmp/adapt-tune-cache');
  const knotCounts = (arg('--knots') ?? '8,32').split(',').map(Number);
  const steps = Number(arg('--steps') ?? 150);
  for (const d of cfg.datasets.filter((x) => (arg('--datasets') ?? 'phantom').split(',').includes(x.name))) {
    for (const f of d.families.filter((x) => (arg('--families') ?? 'reorder').split(',').includes(x.name))) {
      for (const seed of seeds) {
        const model = datasetModel(cfg, d);
        const unet = createUNet({ inChannels: 1, numClasses: d.numClasses, baseChannels: model.baseChannels, depth: model.depth }, seed);
        // The configured recipe's model (mricron's is trained with its `sourceAugment` since session 9).
        const w = await cache.load(`fed-${federatedCacheKey(cfg, configuredRecipe(cfg, d), d, seed)}`);
        if (w === null) throw new SfdaSuiteError(`no cached source model for ${d.name} seed ${seed} (run run-suite.ts with --cache first)`);
        unet.setWeights(w);
        const test = await benchmarkSiteData(d, seed * 100 + 51, f.shift, d.testCases, 'tgt-test');
        const parts = [`source-only ${dice(unet, test).toFixed(3)}`];
        adaptAdaBN(unet, toUnlabeled(test));
        parts.push(`adabn ${dice(unet, test).toFixed(3)}`);
        const rng = new Rng(seed);
        const bestOf = (knots: number[], starts: number[][], n: number): { raw: number; adabn: number } => {
          let best = { raw: -1, adabn: -1 };
          for (const start of starts) {
            unet.setWeights(w);
            const curve = fitOracle(unet, test, knots, start, n, rng);
            const raw = dice(unet, test, curve);
            adaptAdaBN(unet, applyCurve(curve, toUnlabeled(test)));
            const ad = dice(unet, test, curve);
            if (Math.max(raw, ad) > Math.max(best.raw, best.adabn)) best = { raw, adabn: ad };
          }
          return best;
        };
        for (const k of knotCounts) {
          const knots = quantileKnots(test.images, k);
          const best = bestOf(knots, [[...knots], ...[0, 1, 2].map(() => rng.shuffle([...knots]))], steps);
          parts.push(`oracle curve K=${k}: ${best.raw.toFixed(3)} (after AdaBN ${best.adabn.toFixed(3)})`);
        }
        const bandSteps = arg('--band-starts');
        if (bandSteps !== undefined) {
          const { knots, band } = bandKnots(test.images, intensityBands(test.images, d.numClasses));
          const orders = [Array.from({ length: d.numClasses }, (_, j) => j), ...bandPermutations(d.numClasses, Infinity, rng)];
          const best = bestOf(knots, orders.map((o) => permutationValues(knots, band, o)), Number(bandSteps));
          parts.push(`oracle band-order curve K=${knots.length} (${orders.length} orders): ${best.raw.toFixed(3)} (after AdaBN ${best.adabn.toFixed(3)})`);
        }
        if (arg('--supervised') === 'no') {
          console.log(`${d.name} seed ${seed} ${f.name}: ${parts.join(', ')}`);
          unet.dispose();
          continue;
        }
        unet.setWeights(w);
        const sup = await benchmarkSiteData(d, seed * 100 + 52, f.shift, cfg.targetSupervised.numCases, 'tgt-sup');
        // The suite's own reference (suite-run.ts), not a copy of its settings.
        await trainTargetSupervised(cfg, d, unet, sup, seed);
        parts.push(`target-supervised ${dice(unet, test).toFixed(3)}`);
        console.log(`${d.name} seed ${seed} ${f.name}: ${parts.join(', ')}`);
        unet.dispose();
      }
    }
  }
}
