/** Per-site class histograms of a partition, and a plain-text table of them. */
import type { SliceDataset } from '../../site-agent/data/index.ts';
import type { Partition, PartitionItem } from './partition-item.ts';

export interface SiteClassSummary {
  readonly site: number;
  readonly cases: number;
  /** Pixels per class. */
  readonly pixels: number[];
  /** Fraction of the site's foreground pixels per class (index 0 is the background fraction of all pixels). */
  readonly fraction: number[];
  /** Number of cases containing each class. */
  readonly presence: number[];
}

export function summarizePartition(items: readonly PartitionItem[], partition: Partition): SiteClassSummary[] {
  const K = Math.max(...items.map((i) => i.classCounts.length));
  return partition.map((site, s) => {
    const pixels = new Array<number>(K).fill(0);
    const presence = new Array<number>(K).fill(0);
    for (const i of site) {
      items[i].classCounts.forEach((c, k) => {
        pixels[k] += c;
        if (c > 0) presence[k]++;
      });
    }
    const total = pixels.reduce((a, b) => a + b, 0);
    const fg = total - pixels[0];
    const fraction = pixels.map((p, k) => (k === 0 ? (total > 0 ? p / total : 0) : fg > 0 ? p / fg : 0));
    return { site: s, cases: site.length, pixels, fraction, presence };
  });
}

/** Class histogram of one dataset (pixels per class). */
export function classHistogram(ds: SliceDataset): number[] {
  const h = new Array<number>(ds.numClasses).fill(0);
  for (let i = 0; i < ds.labels.length; i++) h[ds.labels[i]]++;
  return h;
}

/** A fixed-width text table: one row per site, foreground class shares in percent. */
export function formatPartitionSummary(summary: readonly SiteClassSummary[]): string {
  const K = summary[0]?.pixels.length ?? 0;
  const head = ['site', 'cases', 'bg%', ...Array.from({ length: K - 1 }, (_, k) => `c${k + 1}%`), 'presence'];
  const rows = summary.map((s) => [
    String(s.site),
    String(s.cases),
    (100 * s.fraction[0]).toFixed(1),
    ...s.fraction.slice(1).map((f) => (100 * f).toFixed(1)),
    s.presence.slice(1).join('/'),
  ]);
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (r: string[]): string => r.map((c, i) => c.padStart(w[i])).join('  ');
  return [line(head), ...rows.map(line)].join('\n');
}
