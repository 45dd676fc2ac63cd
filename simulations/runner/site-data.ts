/**
 * A simulated site's local data: phantom volumes through the site's scanner, split by case into
 * training and validation (never by slice: neighbouring slices of one volume are nearly identical).
 */
import { loadSiteDataset, type SliceDataset } from '../../site-agent/data/index.ts';
import { selectCases, splitByCase } from '../../site-agent/data/index.ts';
import { itemsFromSliceDataset, partitionDirichlet, partitionQuantitySkew } from '../partition/index.ts';
import { generateSiteData } from '../phantoms/index.ts';
import type { FederatedScenario } from '../scenario.ts';

export interface SiteData {
  readonly train: SliceDataset;
  readonly val: SliceDataset;
}

/** The site's slices before the split: phantoms generated in-process, or a dataset folder read from disk. */
async function loadAll(scenario: FederatedScenario, index: number): Promise<SliceDataset> {
  const site = scenario.sites[index];
  if (site.dataDir !== undefined) {
    const { dataset, warnings } = await loadSiteDataset(site.dataDir, {
      size: scenario.data.size,
      numClasses: scenario.data.numClasses,
      normalization: { kind: 'zscore', mask: 'nonzero' },
      seed: scenario.seed + index,
    });
    for (const w of warnings) console.error(`${site.id}: ${w}`);
    return dataset;
  }
  const partition = scenario.partition;
  if (partition) {
    // Every site process draws the same pool (anatomy depends on the seed only, not on the scanner) and the same
    // partition, then keeps its own share, seen through its own scanner.
    const pool = generateSiteData({
      seed: scenario.seed * 7919 + 17,
      numCases: partition.poolCases,
      slicesPerCase: scenario.data.slicesPerCase,
      size: scenario.data.size,
      numClasses: scenario.data.numClasses,
      shift: site.shift ?? 'none',
      caseIdPrefix: 'pool-case',
      ...(scenario.data.classPresence ? { classPresence: scenario.data.classPresence } : {}),
    });
    const items = itemsFromSliceDataset(pool);
    const common = { numSites: scenario.sites.length, alpha: partition.alpha, seed: scenario.seed, minPerSite: partition.minCasesPerSite };
    const shares =
      partition.kind === 'dirichlet' ? partitionDirichlet(items, { ...common, by: partition.by }) : partitionQuantitySkew(items.length, common);
    return selectCases(pool, new Set(shares[index].map((i) => items[i].id)));
  }
  // The seed mixes scenario seed and site index so that sites see different anatomy.
  return generateSiteData({
    seed: scenario.seed * 7919 + index * 104_729 + 17,
    numCases: site.numCases ?? 0,
    slicesPerCase: scenario.data.slicesPerCase,
    size: scenario.data.size,
    numClasses: scenario.data.numClasses,
    shift: site.shift ?? 'none',
    caseIdPrefix: `${site.id}-case`,
    ...(scenario.data.classPresence ? { classPresence: scenario.data.classPresence } : {}),
  });
}

/** Site `index` of the scenario, split by case into training and validation. */
export async function buildSiteData(scenario: FederatedScenario, index: number): Promise<SiteData> {
  const site = scenario.sites[index];
  const all = await loadAll(scenario, index);
  if (new Set(all.caseIds).size < 2) throw new Error(`site ${site.id}: needs at least 2 cases to hold one out for validation`);
  return splitByCase(all, scenario.data.valFraction);
}
