/**
 * `fedsfda simulate --compare fedavg,fedprox,fedbn`: the same federated scenario (same data, partition, seeds,
 * model and schedule) once per aggregation strategy, each a full multi-process run in `OUT/<strategy>/`, then one
 * table: Dice per site, mean Dice, worst site, and the non-IID report's heterogeneity (identical across strategies:
 * it describes the data). Written to `OUT/comparison.json` (schema `fedsfda.compare/v1`).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import Table from 'cli-table3';
import type { StrategyName } from '../../coordinator/index.ts';
import { tableStyle } from '../../site-agent/report/index.ts';
import type { FederatedScenario } from '../scenario.ts';
import { runFederatedSimulation } from './run-federated.ts';
import type { SimulationSummary } from './summary.ts';

export interface StrategyComparisonRow {
  strategy: StrategyName;
  proximalMu: number;
  meanDice: number | null;
  /** The lowest final Dice over sites (the site a strategy serves worst). */
  worstSiteDice: number | null;
  diceBySite: Record<string, number | null>;
  /** With `training.personalizeEpochs`: the final model fine-tuned at each site on its own data. */
  meanPersonalizedDice: number | null;
  worstSitePersonalizedDice: number | null;
  durationMs: number;
}

export interface StrategyComparison {
  schema: 'fedsfda.compare/v1';
  /** True when a run was stopped (SIGINT/SIGTERM): rows holds the strategies that ran, the last one partial. */
  readonly interrupted: boolean;
  scenario: string;
  /** From the first run's non-IID report (masked sums when >= 3 sites, else computed in the clear). */
  heterogeneity: number | null;
  /** Between-site coefficient of variation of each class's pixel share (same report). */
  betweenSiteCv: number[] | null;
  rows: StrategyComparisonRow[];
}

const minOf = (xs: (number | null)[]): number | null => {
  const v = xs.filter((d): d is number => d !== null);
  return v.length > 0 ? Math.min(...v) : null;
};

function rowOf(strategy: StrategyName, mu: number, s: SimulationSummary): StrategyComparisonRow {
  return {
    strategy,
    proximalMu: mu,
    meanDice: s.meanDice,
    worstSiteDice: minOf(s.sites.map((x) => x.dice.mean)),
    diceBySite: Object.fromEntries(s.sites.map((x) => [x.id, x.dice.mean])),
    meanPersonalizedDice: s.meanPersonalizedDice,
    worstSitePersonalizedDice: minOf(s.sites.map((x) => x.personalizedDice?.mean ?? null)),
    durationMs: s.durationMs,
  };
}

export async function runStrategyComparison(opts: {
  scenario: FederatedScenario;
  strategies: readonly StrategyName[];
  outDir: string;
  proximalMu?: number;
  onLog?: (line: string) => void;
  /** Aborting stops the running simulation (its summary is marked interrupted) and the strategies after it. */
  signal?: AbortSignal;
}): Promise<{ comparison: StrategyComparison; table: string; interrupted: boolean }> {
  const log = opts.onLog ?? (() => {});
  const rows: StrategyComparisonRow[] = [];
  let report: SimulationSummary['nonIid']['secure'] = null;
  let interrupted = false;
  for (const strategy of opts.strategies) {
    if (opts.signal?.aborted) {
      interrupted = true;
      break;
    }
    const mu = strategy === 'fedprox' ? (opts.proximalMu ?? opts.scenario.training.proximalMu) : 0;
    if (strategy === 'fedprox' && mu === 0) log('warning: fedprox with proximalMu 0 is fedavg; pass --proximal-mu');
    const scenario: FederatedScenario = { ...opts.scenario, training: { ...opts.scenario.training, strategy, proximalMu: mu } };
    const outDir = join(opts.outDir, strategy);
    await mkdir(outDir, { recursive: true });
    // Child processes read the scenario from a file: this run's variant, paths already absolute.
    const scenarioFile = join(outDir, 'scenario.json');
    await writeFile(scenarioFile, JSON.stringify(scenario, null, 2));
    log(`${strategy}${strategy === 'fedprox' ? ` (mu ${mu})` : ''}: running -> ${outDir}`);
    const summary = await runFederatedSimulation({ scenarioFile, scenario, outDir, onLog: (l) => log(`[${strategy}] ${l}`), ...(opts.signal ? { signal: opts.signal } : {}) });
    interrupted ||= summary.interrupted;
    report ??= summary.nonIid.secure ?? summary.nonIid.inClear;
    rows.push(rowOf(strategy, mu, summary));
  }
  const comparison: StrategyComparison = {
    schema: 'fedsfda.compare/v1',
    interrupted,
    scenario: opts.scenario.name,
    heterogeneity: report?.heterogeneity ?? null,
    betweenSiteCv: report?.betweenSiteCv ?? null,
    rows,
  };
  await writeFile(join(opts.outDir, 'comparison.json'), JSON.stringify(comparison, null, 2));
  const siteIds = opts.scenario.sites.map((s) => s.id);
  const fmt = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(3));
  const tuned = rows.some((r) => r.meanPersonalizedDice !== null);
  const table = new Table({
    head: ['strategy', ...siteIds, 'mean Dice', 'worst site', ...(tuned ? ['fine-tuned mean', 'fine-tuned worst'] : []), 'time s'],
    // Plain borders and headers unless stdout is a colour terminal (NO_COLOR, pipes and files get no ANSI codes).
    style: tableStyle(),
  });
  for (const r of rows) {
    table.push([
      r.strategy === 'fedprox' ? `fedprox (mu ${r.proximalMu})` : r.strategy,
      ...siteIds.map((id) => fmt(r.diceBySite[id] ?? null)),
      fmt(r.meanDice),
      fmt(r.worstSiteDice),
      ...(tuned ? [fmt(r.meanPersonalizedDice), fmt(r.worstSitePersonalizedDice)] : []),
      (r.durationMs / 1000).toFixed(0),
    ]);
  }
  const head = report
    ? `label distributions across sites: heterogeneity ${report.heterogeneity.toExponential(3)}, between-site CV of each class's share ` +
      report.betweenSiteCv.map((cv, k) => `c${k} ${cv.toFixed(2)}`).join(' ')
    : 'label distributions across sites: n/a';
  return { comparison, table: `${head}\n${table.toString()}`, interrupted };
}
