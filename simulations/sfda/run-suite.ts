/**
 * The SFDA shift suite, one command, one table per dataset:
 *   node bin/fedsfda.mjs simulate --config simulations/scenarios/sfda-suite.json [--out DIR]
 * or, for tuning on seeds that are not reported (and subsets of datasets, families and rows, with source models cached
 * on disk between invocations):
 *   npx tsx simulations/sfda/run-suite.ts --config FILE --seeds 101,102 [--datasets mricron] [--families a,b]
 *     [--rows adabn,tent | --rows none] [--references target-supervised,few-label,centralized-source | --references none]
 *     [--skip-references] [--cache DIR] [--set '{"adapt":{"common":{...}}}'] [--out DIR]
 * `--rows none --references target-supervised` runs source-only and the supervised reference alone (tuning the
 * reference); `--skip-references` is `--references none` (tuning methods).
 */
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { WeightSet } from '../../protocol/index.ts';
import { parseSfdaSuiteConfig, SfdaSuiteError, type SfdaSuiteConfig } from './suite-config.ts';
import { checkSuiteFilters, runSuiteDataset, SUITE_REFERENCES, type DatasetResult, type SuiteFilters, type SuiteReference } from './suite-run.ts';
import { formatSuiteDataset, summarizeFamilies } from './suite-table.ts';

export interface SuiteResult {
  readonly name: string;
  readonly seeds: number[];
  readonly datasets: DatasetResult[];
  readonly wallMs: number;
}

/** Runs every (selected) dataset. The caller selects the tfjs backend first (initEngine()). */
export async function runSfdaSuite(cfg: SfdaSuiteConfig, filters: SuiteFilters = {}, log: (m: string) => void = () => undefined): Promise<SuiteResult> {
  checkSuiteFilters(cfg, filters);
  const t0 = performance.now();
  const datasets: DatasetResult[] = [];
  for (const d of cfg.datasets) {
    if (filters.datasets && !filters.datasets.includes(d.name)) continue;
    datasets.push(await runSuiteDataset(cfg, d, filters, log));
  }
  return { name: cfg.name, seeds: cfg.seeds, datasets, wallMs: performance.now() - t0 };
}

export function formatSuite(r: SuiteResult): string {
  return [...r.datasets.map((d) => formatSuiteDataset(d, r.seeds)), `suite ${r.name}: seeds ${r.seeds.join(', ')}; wall time ${(r.wallMs / 1000).toFixed(0)} s`].join('\n\n');
}

/** Loads the suite file, runs it, prints the tables, writes DIR/summary.json when `outDir` is given. */
export async function runSfdaSuiteFile(file: string, outDir?: string, log: (m: string) => void = console.log, filters: SuiteFilters = {}, overrides?: unknown): Promise<SuiteResult> {
  const raw = JSON.parse(await readFile(file, 'utf8')) as unknown;
  const cfg = parseSfdaSuiteConfig(overrides === undefined ? raw : deepMerge(raw, overrides), file);
  const result = await runSfdaSuite(cfg, filters, log);
  log(formatSuite(result));
  if (outDir !== undefined) {
    await mkdir(outDir, { recursive: true });
    const summaries = Object.fromEntries(result.datasets.map((d) => [d.name, summarizeFamilies(d)]));
    await writeFile(join(outDir, 'summary.json'), JSON.stringify({ ...result, summaries }, null, 2));
  }
  return result;
}

/**
 * The selection flags of the command line (names are checked against the suite when it runs, references here).
 * @example
 * suiteFilterArgs(['--rows', 'none', '--references', 'target-supervised']); // { rows: [], references: ['target-supervised'] }
 */
export function suiteFilterArgs(argv: readonly string[]): Pick<SuiteFilters, 'datasets' | 'families' | 'rows' | 'references'> {
  const list = (k: string): string[] | undefined => {
    const i = argv.indexOf(k);
    if (i < 0) return undefined;
    const v = argv[i + 1];
    if (v === undefined || v.startsWith('--') || v === '') throw new SfdaSuiteError(`${k} needs a comma-separated list${k === '--rows' || k === '--references' ? ' (or none)' : ''}`);
    return v === 'none' ? [] : v.split(',');
  };
  const refs = list('--references');
  if (refs !== undefined && argv.includes('--skip-references')) throw new SfdaSuiteError('--skip-references and --references exclude each other');
  const unknown = (refs ?? []).filter((r) => !(SUITE_REFERENCES as readonly string[]).includes(r));
  if (unknown.length > 0) throw new SfdaSuiteError(`unknown reference(s) ${unknown.map((u) => `"${u}"`).join(', ')}; use ${SUITE_REFERENCES.join(', ')} or none`);
  const references = argv.includes('--skip-references') ? [] : (refs as SuiteReference[] | undefined);
  return { datasets: list('--datasets'), families: list('--families'), rows: list('--rows'), ...(references !== undefined ? { references } : {}) };
}

/** Objects merge key by key; anything else in `b` replaces `a` (arrays too). */
export function deepMerge(a: unknown, b: unknown): unknown {
  if (typeof a !== 'object' || a === null || Array.isArray(a) || typeof b !== 'object' || b === null || Array.isArray(b)) return b;
  const out: Record<string, unknown> = { ...(a as Record<string, unknown>) };
  for (const [k, v] of Object.entries(b as Record<string, unknown>)) out[k] = deepMerge(out[k], v);
  return out;
}

/** Source models on disk by a hash of what determines them (tuning only). */
export function diskSourceCache(dir: string): NonNullable<SuiteFilters['sourceCache']> {
  const file = (key: string): string => {
    let h = 2166136261;
    for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 16777619) >>> 0;
    return join(dir, `${key.slice(0, key.indexOf('-'))}-${h.toString(16)}.json`);
  };
  return {
    async load(key) {
      try {
        const saved = JSON.parse(await readFile(file(key), 'utf8')) as { name: string; shape: number[]; data: number[] }[];
        return saved.map((t) => ({ name: t.name, shape: t.shape, data: Float32Array.from(t.data) }));
      } catch {
        return null;
      }
    },
    async store(key, w: WeightSet) {
      await mkdir(dir, { recursive: true });
      await writeFile(file(key), JSON.stringify(w.map((t) => ({ ...t, data: Array.from(t.data) }))));
    },
  };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const arg = (k: string): string | undefined => {
    const i = process.argv.indexOf(k);
    return i >= 0 ? process.argv[i + 1] : undefined;
  };
  const list = (k: string): string[] | undefined => arg(k)?.split(',');
  const { initEngine } = await import('../../site-agent/engine/index.ts');
  const info = await initEngine();
  console.log(`backend: ${info.backend} (tfjs '${info.tfBackend}', ${info.threads} threads)`);
  const seeds = list('--seeds')?.map(Number);
  const set = arg('--set') !== undefined ? JSON.parse(arg('--set')!) : undefined;
  const overrides = seeds ? deepMerge(set ?? {}, { seeds }) : set;
  await runSfdaSuiteFile(arg('--config') ?? 'simulations/scenarios/sfda-suite.json', arg('--out'), console.log, {
    ...suiteFilterArgs(process.argv),
    ...(arg('--cache') !== undefined ? { sourceCache: diskSourceCache(arg('--cache')!) } : {}),
  }, overrides);
}
