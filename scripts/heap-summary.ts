/**
 * What a V8 heap snapshot holds, by node type and constructor name (self sizes), and with two snapshots what grew
 * between them: the tool behind RELIABILITY.md's soak warm-up reading (scripts/reliability-soak.ts --snapshots-at).
 * Run: node --import tsx scripts/heap-summary.ts A.heapsnapshot [B.heapsnapshot] [--top 25]   (prints JSON)
 */
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';

interface Snapshot {
  snapshot: { meta: { node_fields: string[]; node_types: (string[] | string)[] } };
  nodes: number[];
  strings: string[];
}

/** Self bytes and counts per "type:name" (e.g. "object:Socket", "array:(object elements)"). */
async function summarise(file: string): Promise<{ total: number; byKey: Map<string, { bytes: number; count: number }> }> {
  const s = JSON.parse(await readFile(file, 'utf8')) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0] as string[];
  const stride = fields.length;
  const [iType, iName, iSize] = ['type', 'name', 'self_size'].map((f) => fields.indexOf(f));
  const byKey = new Map<string, { bytes: number; count: number }>();
  let total = 0;
  for (let i = 0; i < s.nodes.length; i += stride) {
    const type = types[s.nodes[i + iType]];
    const name = type === 'string' || type === 'concatenated string' || type === 'sliced string' ? '(strings)' : s.strings[s.nodes[i + iName]].slice(0, 60);
    const key = `${type}:${name}`;
    const size = s.nodes[i + iSize];
    total += size;
    const e = byKey.get(key) ?? { bytes: 0, count: 0 };
    e.bytes += size;
    e.count++;
    byKey.set(key, e);
  }
  return { total, byKey };
}

const { values: o, positionals } = parseArgs({ allowPositionals: true, options: { top: { type: 'string', default: '25' } } });
const top = Number(o.top);
const MB = 1024 * 1024;
const a = await summarise(positionals[0]);
const mb = (n: number): number => +(n / MB).toFixed(2);
if (positionals[1] === undefined) {
  const rows = [...a.byKey].sort((x, y) => y[1].bytes - x[1].bytes).slice(0, top);
  console.log(JSON.stringify({ file: positionals[0], totalMb: mb(a.total), top: rows.map(([k, v]) => ({ key: k, mb: mb(v.bytes), count: v.count })) }, null, 2));
} else {
  const b = await summarise(positionals[1]);
  const keys = new Set([...a.byKey.keys(), ...b.byKey.keys()]);
  const grew = [...keys]
    .map((k) => ({ key: k, deltaBytes: (b.byKey.get(k)?.bytes ?? 0) - (a.byKey.get(k)?.bytes ?? 0), deltaCount: (b.byKey.get(k)?.count ?? 0) - (a.byKey.get(k)?.count ?? 0) }))
    .sort((x, y) => y.deltaBytes - x.deltaBytes)
    .slice(0, top);
  console.log(JSON.stringify({ a: positionals[0], b: positionals[1], totalMb: { a: mb(a.total), b: mb(b.total) }, grew: grew.map((g) => ({ key: g.key, mb: mb(g.deltaBytes), count: g.deltaCount })) }, null, 2));
}
