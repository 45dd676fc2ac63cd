/**
 * Non-IID partitions of cases over sites.
 * - Label skew: Dirichlet(alpha) per class over sites (Hsu, Qi, Brown 2019, "Measuring the effects of
 *   non-identical data distribution for federated visual classification", sec. 3), with each case keyed by a
 *   class: the rarest foreground class it contains (`presence`) or its largest foreground class (`volume`).
 *   Small alpha concentrates each class on few sites; large alpha approaches a uniform split.
 * - Quantity skew: site sizes proportional to one Dirichlet(alpha) draw (Li et al. 2022, "Federated learning on
 *   non-IID data silos: an experimental study", sec. 4.2).
 * - By scanner: each scanner's cases stay together on one site (the feature-shift setting of FedBN).
 */
import { Rng } from '../../protocol/common/index.ts';
import { PartitionError, type Partition, type PartitionItem } from './partition-item.ts';

export interface DirichletOptions {
  numSites: number;
  /** Concentration > 0. */
  alpha: number;
  seed: number;
  /** How a case is keyed to one class (see file comment). Default `presence`. */
  by?: 'presence' | 'volume';
  /** Minimum cases per site (default 1); draws are repeated until satisfied. */
  minPerSite?: number;
}

function checkCommon(nItems: number, numSites: number, minPerSite: number, alpha?: number): void {
  if (!Number.isInteger(numSites) || numSites < 1) throw new PartitionError(`numSites must be a positive integer, got ${numSites}`);
  if (!Number.isInteger(minPerSite) || minPerSite < 0) throw new PartitionError(`minPerSite must be a non-negative integer, got ${minPerSite}`);
  if (numSites * minPerSite > nItems) throw new PartitionError(`${numSites} sites x ${minPerSite} cases need ${numSites * minPerSite} cases, only ${nItems} available`);
  if (alpha !== undefined && !(alpha > 0 && Number.isFinite(alpha))) throw new PartitionError(`alpha must be a positive number, got ${alpha}`);
}

/** One Dirichlet(alpha, ..., alpha) draw via normalised Gamma(alpha) samples. */
export function sampleDirichlet(rng: Rng, n: number, alpha: number): number[] {
  const g = Array.from({ length: n }, () => rng.gamma(alpha));
  const s = g.reduce((a, b) => a + b, 0);
  // With tiny alpha every gamma can underflow to 0: put all mass on one random site.
  if (!(s > 0)) {
    const k = rng.int(n);
    return g.map((_, i) => (i === k ? 1 : 0));
  }
  return g.map((v) => v / s);
}

/** The class a case is keyed by for label-skew partitions (0 if it has no foreground). */
export function keyClass(item: PartitionItem, by: 'presence' | 'volume', globalPresence: readonly number[]): number {
  let best = 0;
  for (let k = 1; k < item.classCounts.length; k++) {
    if (item.classCounts[k] <= 0) continue;
    if (best === 0) best = k;
    else if (by === 'volume' ? item.classCounts[k] > item.classCounts[best] : globalPresence[k] < globalPresence[best]) best = k;
  }
  return best;
}

/** Splits `idx` by cumulative proportions. */
function splitByProportions(idx: number[], p: number[]): number[][] {
  const out: number[][] = p.map(() => []);
  let acc = 0;
  let start = 0;
  for (let s = 0; s < p.length; s++) {
    acc += p[s];
    const end = s === p.length - 1 ? idx.length : Math.round(acc * idx.length);
    out[s] = idx.slice(start, end);
    start = end;
  }
  return out;
}

const MAX_REDRAWS = 1000;

export function partitionDirichlet(items: readonly PartitionItem[], opts: DirichletOptions): Partition {
  const minPerSite = opts.minPerSite ?? 1;
  checkCommon(items.length, opts.numSites, minPerSite, opts.alpha);
  const by = opts.by ?? 'presence';
  const K = Math.max(...items.map((i) => i.classCounts.length));
  const presence = new Array<number>(K).fill(0);
  for (const it of items) for (let k = 0; k < it.classCounts.length; k++) if (it.classCounts[k] > 0) presence[k]++;
  const groups: number[][] = Array.from({ length: K }, () => []);
  items.forEach((it, i) => groups[keyClass(it, by, presence)].push(i));
  const rng = new Rng(opts.seed);
  for (let attempt = 0; attempt < MAX_REDRAWS; attempt++) {
    const sites: Partition = Array.from({ length: opts.numSites }, () => []);
    for (const g of groups) {
      if (g.length === 0) continue;
      const order = rng.shuffle(g.slice());
      const parts = splitByProportions(order, sampleDirichlet(rng, opts.numSites, opts.alpha));
      parts.forEach((p, s) => sites[s].push(...p));
    }
    if (sites.every((s) => s.length >= minPerSite)) return sites.map((s) => s.sort((a, b) => a - b));
  }
  throw new PartitionError(`no Dirichlet(alpha=${opts.alpha}) draw in ${MAX_REDRAWS} gave every site ${minPerSite} case(s); raise alpha or lower minPerSite`);
}

export interface QuantitySkewOptions {
  numSites: number;
  alpha: number;
  seed: number;
  minPerSite?: number;
}

export function partitionQuantitySkew(numItems: number, opts: QuantitySkewOptions): Partition {
  const minPerSite = opts.minPerSite ?? 1;
  checkCommon(numItems, opts.numSites, minPerSite, opts.alpha);
  const rng = new Rng(opts.seed);
  const order = rng.shuffle(Array.from({ length: numItems }, (_, i) => i));
  // Everyone gets the minimum first; the rest is shared by the Dirichlet proportions.
  const p = sampleDirichlet(rng, opts.numSites, opts.alpha);
  const sites: Partition = Array.from({ length: opts.numSites }, (_, s) => order.slice(s * minPerSite, (s + 1) * minPerSite));
  const rest = splitByProportions(order.slice(opts.numSites * minPerSite), p);
  rest.forEach((r, s) => sites[s].push(...r));
  return sites.map((s) => s.sort((a, b) => a - b));
}

export interface ByScannerOptions {
  numSites: number;
  seed: number;
}

/**
 * Groups cases by `scanner` and deals whole scanners to sites (largest first, to the currently smallest site),
 * so no site mixes scanners unless there are more scanners than sites.
 */
export function partitionByScanner(items: readonly PartitionItem[], opts: ByScannerOptions): Partition {
  checkCommon(items.length, opts.numSites, 0);
  const groups = new Map<string, number[]>();
  items.forEach((it, i) => {
    if (it.scanner === undefined) throw new PartitionError(`item ${it.id} has no scanner; by-scanner partitioning needs one per item`);
    const g = groups.get(it.scanner) ?? [];
    g.push(i);
    groups.set(it.scanner, g);
  });
  if (groups.size < opts.numSites) throw new PartitionError(`${groups.size} scanner(s) cannot fill ${opts.numSites} sites without splitting a scanner`);
  const rng = new Rng(opts.seed);
  const names = rng.shuffle([...groups.keys()].sort()).sort((a, b) => groups.get(b)!.length - groups.get(a)!.length);
  const sites: Partition = Array.from({ length: opts.numSites }, () => []);
  for (const name of names) {
    let smallest = 0;
    for (let s = 1; s < sites.length; s++) if (sites[s].length < sites[smallest].length) smallest = s;
    sites[smallest].push(...groups.get(name)!);
  }
  return sites.map((s) => s.sort((a, b) => a - b));
}
