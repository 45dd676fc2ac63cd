/**
 * One suite table from several suite logs (e.g. one process per dataset and seed, run side by side on a shared
 * machine; a run stopped early still contributes the cells it finished):
 *   npx tsx simulations/sfda/merge-suite-logs.ts --config simulations/scenarios/sfda-suite.json LOG...
 * Reads the per-cell lines the suite prints ("<dataset> seed <s> <family>: <row> Dice <d> (...") and the in-domain
 * source line; prints the same tables as the suite itself (suite-table.ts) and how many seeds each cell has.
 */
import { readFile } from 'node:fs/promises';
import { parseSfdaSuiteConfig, type SfdaSuiteConfig } from './suite-config.ts';
import { judgeAdaptation } from '../../site-agent/adapt/index.ts';
import { SOURCE_ONLY, suiteRows, type CellRun, type DatasetResult, type SourceScore } from './suite-run.ts';
import { formatSuiteDataset } from './suite-table.ts';

const CELL = /^(\S+) seed (\d+) (\S+): (\S+) Dice ([0-9.]+|NaN) \(([0-9.]+) s\)/;
const LABEL_FREE = /\[label-free: entropy ([0-9.]+|NaN), prior KL ([0-9.]+|NaN|Infinity), consistency ([0-9.]+|NaN)\]/;
const SOURCE = /^(\S+) seed (\d+): in-domain source Dice federated ([0-9.]+|NaN), centralized ([0-9.]+|NaN)/;

/** Every dataset of `cfg` with the cells found in `lines` (later lines for the same dataset/seed/family/row win). */
export function mergeSuiteLines(cfg: SfdaSuiteConfig, lines: readonly string[]): { results: DatasetResult[]; seeds: Map<string, number[]> } {
  const cells = new Map<string, CellRun>();
  const sources = new Map<string, SourceScore & { dataset: string }>();
  for (const line of lines) {
    const c = CELL.exec(line);
    if (c) {
      const [, dataset, seed, family, row, dice, secs] = c;
      const lf = LABEL_FREE.exec(line);
      const labelFree = lf ? { labelFree: { entropy: Number(lf[1]), priorKl: Number(lf[2]), consistency: Number(lf[3]) } } : {};
      const bar = line.indexOf(' | ');
      const notes = bar >= 0 ? line.slice(bar + 3).split(' | ') : [];
      cells.set(`${dataset}|${family}|${row}|${seed}`, { seed: Number(seed), dice: Number(dice), assd: NaN, infiniteCount: 0, wallMs: 1000 * Number(secs), notes, ...labelFree });
      continue;
    }
    const s = SOURCE.exec(line);
    if (s) sources.set(`${s[1]}|${s[2]}`, { dataset: s[1], seed: Number(s[2]), federated: Number(s[3]), centralized: Number(s[4]) });
  }
  const rows = suiteRows(cfg);
  const seeds = new Map<string, number[]>();
  const results = cfg.datasets.map((d): DatasetResult => {
    const byRow = Object.fromEntries(rows.map((row) => [row, Object.fromEntries(d.families.map((f) => {
      const runs = [...cells.entries()].filter(([k]) => k.startsWith(`${d.name}|${f.name}|${row}|`)).map(([, v]) => v).sort((a, b) => a.seed - b.seed);
      return [f.name, runs];
    }))]));
    const source = [...sources.values()].filter((s) => s.dataset === d.name).sort((a, b) => a.seed - b.seed);
    seeds.set(d.name, source.map((s) => s.seed));
    return { name: d.name, families: d.families.map((f) => ({ name: f.name, heldOut: f.heldOut })), rows, cells: byRow, source };
  });
  return { results, seeds };
}

/**
 * The do-no-harm safeguard (site-agent/adapt/safeguard.ts) replayed on the logged label-free scores: the same verdict
 * `adapt(..., { safeguard: true })` would reach (same model, same images, same scores), with source-only's scores as
 * "before". Cells the safeguard already judged when they ran (a `safeguard:` note: on by default since session 6)
 * are taken as they are. Returns one line per fallback and the rows' mean Dice with the safeguard.
 */
export function replaySafeguard(r: DatasetResult): { fallbacks: string[]; guarded: Map<string, Map<string, number>> } {
  const fallbacks: string[] = [];
  const guarded = new Map<string, Map<string, number>>();
  for (const row of r.rows) {
    const perFamily = new Map<string, number>();
    for (const f of r.families) {
      const dice: number[] = [];
      for (const cell of r.cells[row][f.name]) {
        const before = r.cells[SOURCE_ONLY][f.name].find((c) => c.seed === cell.seed);
        if (!cell.labelFree || !before?.labelFree || row === SOURCE_ONLY || cell.notes.some((n) => n.startsWith('safeguard:'))) {
          dice.push(cell.dice);
          continue;
        }
        const v = judgeAdaptation(before.labelFree, cell.labelFree);
        if (!v.keep) fallbacks.push(`${r.name} ${f.name} ${row} seed ${cell.seed}: Dice ${cell.dice.toFixed(3)} -> ${before.dice.toFixed(3)} (${v.reason})`);
        dice.push(v.keep ? cell.dice : before.dice);
      }
      if (dice.length) perFamily.set(f.name, dice.reduce((a, b) => a + b, 0) / dice.length);
    }
    guarded.set(row, perFamily);
  }
  return { fallbacks, guarded };
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const i = args.indexOf('--config');
  const configFile = i >= 0 ? args[i + 1] : 'simulations/scenarios/sfda-suite.json';
  const logs = i >= 0 ? [...args.slice(0, i), ...args.slice(i + 2)] : args;
  const cfg = parseSfdaSuiteConfig(JSON.parse(await readFile(configFile, 'utf8')) as unknown, configFile);
  const lines = (await Promise.all(logs.map((f) => readFile(f, 'utf8')))).flatMap((t) => t.split('\n'));
  const { results, seeds } = mergeSuiteLines(cfg, lines);
  for (const r of results) {
    if (r.source.length === 0) continue;
    console.log(formatSuiteDataset(r, seeds.get(r.name) ?? []));
    const counts = r.families.map((f) => `${f.name} ${Math.min(...r.rows.map((row) => r.cells[row][f.name].length))}-${Math.max(...r.rows.map((row) => r.cells[row][f.name].length))}`);
    console.log(`${r.name}: seeds per cell (min-max over rows): ${counts.join(', ')}`);
    const { fallbacks } = replaySafeguard(r);
    console.log(`${r.name}: safeguard replayed on the logged label-free scores: ${fallbacks.length} fallback(s)${fallbacks.map((x) => `\n  ${x}`).join('')}\n`);
  }
}

if (import.meta.url === `file://${process.argv[1]}`) await main();
