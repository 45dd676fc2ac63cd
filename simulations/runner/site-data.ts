/**
 * A simulated site's local data: phantom volumes through the site's scanner, split by case into
 * training and validation (never by slice: neighbouring slices of one volume are nearly identical).
 */
import { loadSiteDataset } from '../../site-agent/data/dataset/index.ts';
import type { SliceDataset } from '../../site-agent/data/slice-dataset.ts';
import { generateSiteData } from '../phantoms/index.ts';
import type { FederatedScenario } from '../scenario.ts';

export interface SiteData {
  readonly train: SliceDataset;
  readonly val: SliceDataset;
}

/** Keeps the slices whose case is in `keep`, in dataset order. */
function selectCases(ds: SliceDataset, keep: Set<string>): SliceDataset {
  const px = ds.height * ds.width;
  const idx: number[] = [];
  ds.caseIds.forEach((id, i) => keep.has(id) && idx.push(i));
  const images = new Float32Array(idx.length * px * ds.channels);
  const labels = new Uint8Array(idx.length * px);
  idx.forEach((s, k) => {
    images.set(ds.images.subarray(s * px * ds.channels, (s + 1) * px * ds.channels), k * px * ds.channels);
    labels.set(ds.labels.subarray(s * px, (s + 1) * px), k * px);
  });
  return { ...ds, n: idx.length, images, labels, caseIds: idx.map((i) => ds.caseIds[i]) };
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
  // The seed mixes scenario seed and site index so that sites see different anatomy.
  return generateSiteData({
    seed: scenario.seed * 7919 + index * 104_729 + 17,
    numCases: site.numCases ?? 0,
    slicesPerCase: scenario.data.slicesPerCase,
    size: scenario.data.size,
    numClasses: scenario.data.numClasses,
    shift: site.shift ?? 'none',
    caseIdPrefix: `${site.id}-case`,
  });
}

/** Site `index` of the scenario, split by case into training and validation. */
export async function buildSiteData(scenario: FederatedScenario, index: number): Promise<SiteData> {
  const site = scenario.sites[index];
  const all = await loadAll(scenario, index);
  const cases = [...new Set(all.caseIds)];
  const numVal = Math.max(1, Math.min(cases.length - 1, Math.round(cases.length * scenario.data.valFraction)));
  if (cases.length < 2) throw new Error(`site ${site.id}: needs at least 2 cases to hold one out for validation`);
  const valCases = new Set(cases.slice(cases.length - numVal));
  const trainCases = new Set(cases.slice(0, cases.length - numVal));
  return { train: selectCases(all, trainCases), val: selectCases(all, valCases) };
}
