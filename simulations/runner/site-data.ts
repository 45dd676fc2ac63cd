/**
 * A simulated site's local data: phantom volumes through the site's scanner, split by case into
 * training and validation (never by slice: neighbouring slices of one volume are nearly identical).
 */
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

/** Site `index` of the scenario; the seed mixes scenario seed and site index so sites see different anatomy. */
export function buildSiteData(scenario: FederatedScenario, index: number): SiteData {
  const site = scenario.sites[index];
  const all = generateSiteData({
    seed: scenario.seed * 7919 + index * 104_729 + 17,
    numCases: site.numCases,
    slicesPerCase: scenario.data.slicesPerCase,
    size: scenario.data.size,
    numClasses: scenario.data.numClasses,
    shift: site.shift as Parameters<typeof generateSiteData>[0]['shift'],
    caseIdPrefix: `${site.id}-case`,
  });
  const cases = [...new Set(all.caseIds)];
  const numVal = Math.max(1, Math.min(cases.length - 1, Math.round(cases.length * scenario.data.valFraction)));
  if (cases.length < 2) throw new Error(`site ${site.id}: needs at least 2 cases to hold one out for validation`);
  const valCases = new Set(cases.slice(cases.length - numVal));
  const trainCases = new Set(cases.slice(0, cases.length - numVal));
  return { train: selectCases(all, trainCases), val: selectCases(all, valCases) };
}
