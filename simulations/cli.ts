/** `fedsfda simulate`: runs a scenario file (the embedded default when none is given). */
import type { Command } from 'commander';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { formatSummaryTable } from './runner/summary.ts';
import { runFederatedSimulation } from './runner/run-federated.ts';
import { loadScenarioFile, parseFederatedScenario, ScenarioError } from './scenario.ts';

export const DEFAULT_SCENARIO = fileURLToPath(new URL('./scenarios/default.json', import.meta.url));

export function registerSimulateCommands(program: Command): void {
  program
    .command('simulate')
    .description('simulate several hospitals on this machine (separate processes over loopback) and report Dice per site')
    .option('-c, --config <file>', 'scenario file (JSON)', DEFAULT_SCENARIO)
    .option('-o, --out <dir>', 'output directory (summary.json, history.json, checkpoints, keys)', 'runs/latest')
    .action(async (opts: { config: string; out: string }) => {
      const { kind, raw } = await loadScenarioFile(opts.config);
      switch (kind) {
        case 'federated': {
          const scenario = parseFederatedScenario(opts.config, raw);
          console.log(`fedsfda simulate: ${scenario.name} -> ${resolve(opts.out)}`);
          const summary = await runFederatedSimulation({
            scenarioFile: opts.config,
            scenario,
            outDir: opts.out,
            onLog: (line) => console.log(`  ${line}`),
          });
          console.log(formatSummaryTable(summary));
          const fmt = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(3));
          console.log(
            `mean Dice over sites: ${fmt(summary.meanDice)} (untrained model: ${fmt(summary.meanUntrainedDice)}); ` +
              `${(summary.durationMs / 1000).toFixed(1)} s on backend ${summary.backend}; wrote ${resolve(opts.out, 'summary.json')}`,
          );
          break;
        }
        case 'sfda-benchmark': {
          // Loaded on demand: the benchmark pulls in the adaptation code, which `simulate` otherwise does not need.
          const { initEngine } = await import('../site-agent/engine/index.ts');
          const { runSfdaBenchmarkFile } = await import('./sfda/index.ts');
          const info = await initEngine();
          console.log(`fedsfda simulate: source-free adaptation benchmark on backend ${info.backend} -> ${resolve(opts.out)}`);
          const result = await runSfdaBenchmarkFile(opts.config, opts.out, (line) => console.log(line));
          console.log(`wrote ${resolve(opts.out, 'summary.json')} (${(result.wallMs / 1000).toFixed(1)} s)`);
          break;
        }
        default:
          throw new ScenarioError(opts.config, `unknown kind "${kind}" (expected "federated" or "sfda-benchmark")`);
      }
    });
}
