import { describe, expect, it } from 'vitest';
import { generateSiteData } from '../phantoms/index.ts';
import {
  applyPartition,
  classHistogram,
  formatPartitionSummary,
  itemsFromSliceDataset,
  PartitionError,
  partitionByScanner,
  partitionDirichlet,
  partitionQuantitySkew,
  summarizePartition,
  type Partition,
  type PartitionItem,
} from './index.ts';

/** 240 cases, each containing exactly one foreground class (1..4), 60 per class. */
const items: PartitionItem[] = Array.from({ length: 240 }, (_, i) => {
  const counts = [1000, 0, 0, 0, 0];
  counts[1 + (i % 4)] = 50 + (i % 7);
  return { id: `c${i}`, classCounts: counts, scanner: `s${i % 6}` };
});

function expectCover(p: Partition, n: number): void {
  const all = p.flat().sort((a, b) => a - b);
  expect(all).toEqual([...Array(n).keys()]);
}

/** Mean over classes of the largest share of that class held by one site (1/numSites = uniform, 1 = one site). */
function classConcentration(p: Partition): number {
  let sum = 0;
  for (let k = 1; k <= 4; k++) {
    const perSite = p.map((site) => site.filter((i) => items[i].classCounts[k] > 0).length);
    sum += Math.max(...perSite) / perSite.reduce((a, b) => a + b, 0);
  }
  return sum / 4;
}

describe('partitionDirichlet', () => {
  it('is skewed for small alpha and near uniform for large alpha', () => {
    const skewed = partitionDirichlet(items, { numSites: 4, alpha: 0.05, seed: 1 });
    const flat = partitionDirichlet(items, { numSites: 4, alpha: 1000, seed: 1 });
    expectCover(skewed, 240);
    expectCover(flat, 240);
    expect(classConcentration(skewed)).toBeGreaterThan(0.75);
    expect(classConcentration(flat)).toBeLessThan(0.35);
    for (const site of flat) expect(Math.abs(site.length - 60)).toBeLessThanOrEqual(8);
    expect(skewed.every((s) => s.length >= 1)).toBe(true);
  });

  it('is deterministic in the seed', () => {
    const a = partitionDirichlet(items, { numSites: 5, alpha: 0.3, seed: 42, by: 'volume' });
    const b = partitionDirichlet(items, { numSites: 5, alpha: 0.3, seed: 42, by: 'volume' });
    const c = partitionDirichlet(items, { numSites: 5, alpha: 0.3, seed: 43, by: 'volume' });
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('rejects impossible requests', () => {
    expect(() => partitionDirichlet(items, { numSites: 4, alpha: 0, seed: 1 })).toThrow(PartitionError);
    expect(() => partitionDirichlet(items.slice(0, 3), { numSites: 4, alpha: 1, seed: 1 })).toThrow(PartitionError);
  });
});

describe('partitionQuantitySkew and partitionByScanner', () => {
  it('quantity skew: unequal sizes for small alpha, equal-ish for large alpha, minimum respected', () => {
    const skew = partitionQuantitySkew(240, { numSites: 4, alpha: 0.2, seed: 3, minPerSite: 5 });
    const flat = partitionQuantitySkew(240, { numSites: 4, alpha: 1000, seed: 3 });
    expectCover(skew, 240);
    const sizes = skew.map((s) => s.length);
    expect(Math.min(...sizes)).toBeGreaterThanOrEqual(5);
    expect(Math.max(...sizes) / Math.min(...sizes)).toBeGreaterThan(2);
    for (const s of flat) expect(Math.abs(s.length - 60)).toBeLessThanOrEqual(8);
  });

  it('by scanner: no site mixes scanners when there are as many scanners as sites', () => {
    const p = partitionByScanner(items, { numSites: 6, seed: 1 });
    expectCover(p, 240);
    for (const site of p) expect(new Set(site.map((i) => items[i].scanner)).size).toBe(1);
    const three = partitionByScanner(items, { numSites: 3, seed: 1 });
    for (const site of three) expect(new Set(site.map((i) => items[i].scanner)).size).toBe(2);
    expect(() => partitionByScanner(items, { numSites: 7, seed: 1 })).toThrow(PartitionError);
  });
});

describe('phantom datasets and summaries', () => {
  it('splits a phantom site by case and summarises class histograms', () => {
    const ds = generateSiteData({ seed: 5, numCases: 12, slicesPerCase: 3, size: 16, numClasses: 4, shift: 'scanner-a' });
    const its = itemsFromSliceDataset(ds, 'scanner-a');
    expect(its.length).toBe(12);
    const part = partitionDirichlet(its, { numSites: 3, alpha: 0.5, seed: 2 });
    const sites = applyPartition(ds, its, part);
    expect(sites.reduce((s, d) => s + d.n, 0)).toBe(ds.n);
    for (const [s, d] of sites.entries()) {
      expect(new Set(d.caseIds)).toEqual(new Set(part[s].map((i) => its[i].id)));
      expect(d.sliceThickness).toBe(ds.sliceThickness);
    }
    const summary = summarizePartition(its, part);
    const total = classHistogram(ds);
    for (let k = 0; k < 4; k++) expect(summary.reduce((s, r) => s + r.pixels[k], 0)).toBe(total[k]);
    for (const r of summary) expect(r.fraction.slice(1).reduce((a, b) => a + b, 0)).toBeCloseTo(1);
    const table = formatPartitionSummary(summary);
    expect(table.split('\n')).toHaveLength(4);
    expect(table).toMatch(/c3%/);
  });
});
