/**
 * The source statistics package (site-agent/adapt/source-stats.ts, kind `fedsfda-source-stats`) as named
 * vectors, so that it crosses the wire through a statistics round and is pooled by (masked) summation:
 * every field is a sufficient statistic (count, sum, sum of squares / outer products), and pooling is addition.
 * Sites multiply every entry by a public `scale` (about 1 / total source pixels) so the values stay inside the
 * secure-aggregation clipping range; the coordinator divides it back out. No tfjs here: the coordinator uses it.
 * The package's schema and type have one home: protocol/contracts/source-stats.ts.
 */
import { SOURCE_STATS_KIND, SOURCE_STATS_VERSION, type LatentMomentsJson, type SourceStats } from './contracts/index.ts';
import { ProtocolError } from './errors.ts';

type Moments = LatentMomentsJson;

export const SOURCE_STATS_REQUEST = 'source-stats';

/** Named vectors of one site's package, every entry multiplied by `scale`. */
export function sourceStatsToVectors(stats: SourceStats, scale: number): Record<string, Float32Array> {
  if (!(scale > 0 && Number.isFinite(scale))) throw new ProtocolError('malformed', `source-stats scale must be > 0, got ${scale}`);
  const v = (xs: readonly number[]): Float32Array => Float32Array.from(xs, (x) => x * scale);
  const out: Record<string, Float32Array> = {};
  for (const [layer, m] of Object.entries(stats.bn)) {
    out[`bn/${layer}/count`] = v([m.count]);
    out[`bn/${layer}/sum`] = v(m.sum);
    out[`bn/${layer}/sumSq`] = v(m.sumSq);
  }
  stats.classes.forEach((c, k) => {
    out[`class/${k}/labelCount`] = v([c.labelCount]);
    for (const part of ['confident', 'labelled'] as const) {
      out[`class/${k}/${part}/count`] = v([c[part].count]);
      out[`class/${k}/${part}/sum`] = v(c[part].sum);
      out[`class/${k}/${part}/sumOuter`] = v(c[part].sumOuter);
    }
  });
  return out;
}

/** The pooled package from summed vectors (counts are rounded back to integers after unscaling). */
export function sourceStatsFromVectors(
  sums: Record<string, Float32Array>,
  meta: { numClasses: number; latentDim: number; confidence: number; numSites: number; scale: number },
): SourceStats {
  const get = (name: string, length?: number): number[] => {
    const x = sums[name];
    if (!x) throw new ProtocolError('malformed', `source statistics lack "${name}"`);
    if (length !== undefined && x.length !== length) throw new ProtocolError('malformed', `"${name}" has ${x.length} values, expected ${length}`);
    return Array.from(x, (y) => y / meta.scale);
  };
  const count = (name: string): number => Math.max(0, Math.round(get(name, 1)[0]));
  const bn: SourceStats['bn'] = {};
  for (const name of Object.keys(sums)) {
    const m = /^bn\/(.+)\/count$/.exec(name);
    if (!m) continue;
    const sum = get(`bn/${m[1]}/sum`);
    bn[m[1]] = { count: count(name), sum, sumSq: get(`bn/${m[1]}/sumSq`, sum.length) };
  }
  const d = meta.latentDim;
  const moments = (prefix: string): Moments => ({ count: count(`${prefix}/count`), sum: get(`${prefix}/sum`, d), sumOuter: get(`${prefix}/sumOuter`, d * d) });
  const classes = Array.from({ length: meta.numClasses }, (_, k) => ({
    labelCount: count(`class/${k}/labelCount`),
    confident: moments(`class/${k}/confident`),
    labelled: moments(`class/${k}/labelled`),
  }));
  return { kind: SOURCE_STATS_KIND, version: SOURCE_STATS_VERSION, numClasses: meta.numClasses, latentDim: d, confidence: meta.confidence, numSites: meta.numSites, bn, classes };
}
