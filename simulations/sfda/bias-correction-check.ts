/**
 * How much of a target family's intensity inhomogeneity the label-free bias-field correction removes, measured with
 * the labels it never sees: per case, the foreground classes' pooled within-class intensity variance over their total
 * variance (1 - R² of intensity on class; affine-invariant; lower = flatter tissues), before and after the correction, next to the
 * same anatomy through the source scanner. Diagnostic for tuning seeds only:
 *   npx tsx simulations/sfda/bias-correction-check.ts --seeds 101,102,103 --datasets phantom,mricron --families bias [--set '{"degree":1}']
 */
import { readFile } from 'node:fs/promises';
import { correctBiasField, resolveBiasCorrection, toUnlabeled, type BiasCorrectionOptions } from '../../site-agent/adapt/index.ts';
import type { SliceDataset } from '../../site-agent/data/index.ts';
import { benchmarkSiteData } from './benchmark-site.ts';
import { parseSfdaSuiteConfig } from './suite-config.ts';

function spreadRatio(images: Float32Array, labels: Uint8Array, slices: readonly number[], px: number, classes: number): number {
  const sum = new Float64Array(classes);
  const sq = new Float64Array(classes);
  const cnt = new Float64Array(classes);
  for (const s of slices) {
    for (let i = s * px; i < (s + 1) * px; i++) {
      const c = labels[i];
      sum[c] += images[i];
      sq[c] += images[i] ** 2;
      cnt[c]++;
    }
  }
  // Pooled within-class variance over the total variance of the labelled foreground (1 - R² of intensity on class).
  let n = 0;
  let total = 0;
  let totalSq = 0;
  let within = 0;
  for (let c = 1; c < classes; c++) {
    if (cnt[c] === 0) continue;
    n += cnt[c];
    total += sum[c];
    totalSq += sq[c];
    within += sq[c] - sum[c] ** 2 / cnt[c];
  }
  return within / (totalSq - total ** 2 / n);
}

function perCase(ds: SliceDataset, images: Float32Array): number[] {
  const px = ds.height * ds.width;
  const byCase = new Map<string, number[]>();
  ds.caseIds.forEach((id, i) => byCase.set(id, [...(byCase.get(id) ?? []), i]));
  return [...byCase.values()].map((sl) => spreadRatio(images, ds.labels, sl, px, ds.numClasses));
}

const arg = (k: string): string | undefined => (process.argv.indexOf(k) >= 0 ? process.argv[process.argv.indexOf(k) + 1] : undefined);
const cfg = parseSfdaSuiteConfig(JSON.parse(await readFile(arg('--config') ?? 'simulations/scenarios/sfda-suite.json', 'utf8')));
const seeds = (arg('--seeds') ?? '101,102,103').split(',').map(Number);
const spec = resolveBiasCorrection(JSON.parse(arg('--set') ?? '{}') as BiasCorrectionOptions);
const mean = (xs: number[]): number => xs.reduce((a, b) => a + b, 0) / xs.length;
for (const d of cfg.datasets) {
  if (arg('--datasets') && !arg('--datasets')!.split(',').includes(d.name)) continue;
  for (const f of d.families) {
    if (arg('--families') && !arg('--families')!.split(',').includes(f.name)) continue;
    for (const seed of seeds) {
      const ds = await benchmarkSiteData(d, seed * 100 + 51, f.shift, d.testCases, 'tgt-test');
      const src = await benchmarkSiteData(d, seed * 100 + 51, 'scanner-a', d.testCases, 'tgt-test');
      const t0 = performance.now();
      const r = correctBiasField(toUnlabeled(ds), spec);
      const ms = performance.now() - t0;
      const before = perCase(ds, ds.images);
      const after = perCase(ds, r.target.images);
      const ref = perCase(src, src.images);
      console.log(`${d.name} ${f.name} seed ${seed}: within-class / total variance  before ${mean(before).toFixed(3)}  after ${mean(after).toFixed(3)}  source scanner ${mean(ref).toFixed(3)}  | per case after ${after.map((x) => x.toFixed(3)).join(' ')} | field range ${r.groups.map((g) => g.fieldRange.toFixed(2)).join(' ')} | ${ms.toFixed(0)} ms`);
    }
  }
}
