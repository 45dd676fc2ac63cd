/** `fedsfda simulate`: runs a scenario file (the embedded default when none is given). */
import { InvalidArgumentError, type Command } from 'commander';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { resolve } from 'node:path';
import { STRATEGY_NAMES, type StrategyName } from '../coordinator/strategies/create-strategy.ts';
import { EXIT_INTERRUPTED, interruptOnSignals } from './interrupt-on-signals.ts';
import { embeddedScenarioNames, resolveScenarioArg } from './embedded-scenarios.ts';
import { loadScenarioFile, parseFederatedScenario, ScenarioError, type FederatedScenario } from './scenario.ts';

function strategyList(v: string): StrategyName[] {
  const names = v.split(',').map((x) => x.trim());
  for (const n of names) {
    if (!(STRATEGY_NAMES as readonly string[]).includes(n)) throw new InvalidArgumentError(`unknown strategy "${n}" (one of ${STRATEGY_NAMES.join(', ')})`);
  }
  if (new Set(names).size !== names.length) throw new InvalidArgumentError('a strategy is listed twice');
  return names as StrategyName[];
}

function nonNegative(v: string): number {
  const x = Number(v);
  if (!(x >= 0) || !Number.isFinite(x)) throw new InvalidArgumentError(`expected a non-negative number, got "${v}"`);
  return x;
}

export const DEFAULT_SCENARIO = fileURLToPath(new URL('./scenarios/default.json', import.meta.url));

/**
 * A second SIGINT/SIGTERM: kill every child now (SIGKILL; none is waited for, so a child busy building its data
 * cannot hold the command) and exit 130 without a summary.
 */
function forceStop(): void {
  void import('./runner/spawn-ts.ts').then(
    ({ killLiveChildren }) => {
      killLiveChildren();
      process.exit(EXIT_INTERRUPTED);
    },
    () => process.exit(EXIT_INTERRUPTED),
  );
}

/** Runs one scenario; true when it was interrupted (a signal that came after the run had finished does not count). */
async function runOne(opts: { config: string; out: string }, scenario: FederatedScenario, signal: AbortSignal): Promise<boolean> {
  // The runner (and the engine it loads) only when a run starts: `fedsfda --help` and other commands stay fast.
  const { formatSummaryTable } = await import('./runner/summary.ts');
  const { runFederatedSimulation } = await import('./runner/run-federated.ts');
  console.log(`fedsfda simulate: ${scenario.name} -> ${resolve(opts.out)}`);
  const summary = await runFederatedSimulation({ scenarioFile: opts.config, scenario, outDir: opts.out, onLog: (line) => console.log(`  ${line}`), signal });
  console.log(formatSummaryTable(summary));
  const fmt = (v: number | null): string => (v === null ? 'n/a' : v.toFixed(3));
  console.log(
    `mean Dice over sites: ${fmt(summary.meanDice)} (untrained model: ${fmt(summary.meanUntrainedDice)}); ` +
      `${(summary.durationMs / 1000).toFixed(1)} s on backend ${summary.backend}; wrote ${resolve(opts.out, 'summary.json')}`,
  );
  if (summary.privacy) {
    const p = summary.privacy;
    console.log(`differential privacy (${p.mode}): epsilon ${p.epsilon.toFixed(3)} at delta ${p.delta} after ${p.roundsAccounted} rounds (noise multiplier ${p.noiseMultiplier.toFixed(4)}, sampling rate ${p.samplingRate})`);
  }
  return summary.interrupted;
}

async function runCompare(opts: { out: string; proximalMu?: number }, scenario: FederatedScenario, strategies: StrategyName[], signal: AbortSignal): Promise<boolean> {
  const { runStrategyComparison } = await import('./runner/compare-strategies.ts');
  console.log(`fedsfda simulate --compare ${strategies.join(',')}: ${scenario.name} -> ${resolve(opts.out)}`);
  const { table, interrupted } = await runStrategyComparison({
    scenario,
    strategies,
    outDir: opts.out,
    ...(opts.proximalMu !== undefined ? { proximalMu: opts.proximalMu } : {}),
    onLog: (line) => console.log(`  ${line}`),
    signal,
  });
  console.log(table);
  console.log(`wrote ${resolve(opts.out, 'comparison.json')}`);
  return interrupted;
}

export function registerSimulateCommands(program: Command): void {
  program
    .command('simulate')
    .description('simulate several hospitals on this machine (separate processes over loopback) and report Dice per site')
    .option('-c, --config <file>', 'scenario file (JSON), or the name of an embedded one (default, mricron, secure, sfda-benchmark, ...: usable from any folder)', (v: string) => resolveScenarioArg(v), DEFAULT_SCENARIO)
    .option('-o, --out <dir>', 'output directory (summary.json, history.json, checkpoints, keys)', 'runs/latest')
    .option('--compare <strategies>', `federated scenarios: run once per strategy (comma-separated: ${STRATEGY_NAMES.join(', ')}) into OUT/<strategy>/ and print one comparison table`, strategyList)
    .option('--proximal-mu <mu>', "FedProx's proximal coefficient for --compare (default: the scenario's)", nonNegative)
    .action(async (opts: { config: string; out: string; compare?: StrategyName[]; proximalMu?: number }) => {
      if (!existsSync(opts.config)) throw new ScenarioError(opts.config, `no such file (embedded scenarios, usable by name from any folder: ${embeddedScenarioNames().join(', ')})`);
      const { kind, raw, text } = await loadScenarioFile(opts.config);
      if (opts.compare && kind !== 'federated') throw new ScenarioError(opts.config, '--compare needs a federated scenario');
      switch (kind) {
        case 'federated': {
          const scenario = parseFederatedScenario(opts.config, raw, text);
          const interrupt = interruptOnSignals({ forceStop });
          let interrupted: boolean;
          try {
            interrupted = opts.compare ? await runCompare(opts, scenario, opts.compare, interrupt.signal) : await runOne(opts, scenario, interrupt.signal);
          } finally {
            interrupt.dispose();
          }
          // Exit 130 only when the summary says interrupted: a signal during the last writes leaves a complete run.
          if (interrupted) {
            console.log(`interrupted by ${interrupt.signal.aborted ? String(interrupt.signal.reason) : 'the coordinator stopping'}: every process stopped; partial results in ${resolve(opts.out)}`);
            process.exitCode = EXIT_INTERRUPTED;
          }
          break;
        }
        case 'sfda-benchmark': {
          // Loaded on demand: the benchmark pulls in the adaptation code, which `simulate` otherwise does not need.
          // Refuse a bad config before loading the engine.
          const { parseSfdaBenchmarkConfig } = await import('./sfda/benchmark-config.ts');
          parseSfdaBenchmarkConfig(raw, opts.config, text);
          const { initEngine } = await import('../site-agent/engine/index.ts');
          const { runSfdaBenchmarkFile } = await import('./sfda/index.ts');
          const info = await initEngine();
          console.log(`fedsfda simulate: source-free adaptation benchmark on backend ${info.backend} -> ${resolve(opts.out)}`);
          const result = await runSfdaBenchmarkFile(opts.config, opts.out, (line) => console.log(line));
          console.log(`wrote ${resolve(opts.out, 'summary.json')} (${(result.wallMs / 1000).toFixed(1)} s)`);
          break;
        }
        case 'sfda-suite': {
          const { initEngine } = await import('../site-agent/engine/index.ts');
          const { runSfdaSuiteFile } = await import('./sfda/index.ts');
          const info = await initEngine();
          console.log(`fedsfda simulate: source-free adaptation shift suite on backend ${info.backend} -> ${resolve(opts.out)}`);
          const result = await runSfdaSuiteFile(opts.config, opts.out, (line) => console.log(line));
          console.log(`wrote ${resolve(opts.out, 'summary.json')} (${(result.wallMs / 1000).toFixed(1)} s)`);
          break;
        }
        case 'sfda-multi-target': {
          const { initEngine } = await import('../site-agent/engine/index.ts');
          const { runMultiTargetFile } = await import('./sfda/index.ts');
          const info = await initEngine();
          console.log(`fedsfda simulate: federated source-free adaptation of several target sites on backend ${info.backend} -> ${resolve(opts.out)}`);
          const result = await runMultiTargetFile(opts.config, opts.out, (line) => console.log(line));
          console.log(`wrote ${resolve(opts.out, 'summary.json')} (${(result.wallMs / 1000).toFixed(1)} s)`);
          break;
        }
        default:
          throw new ScenarioError(opts.config, `unknown kind "${kind}" (expected "federated", "sfda-benchmark", "sfda-suite" or "sfda-multi-target")`);
      }
    });
}
