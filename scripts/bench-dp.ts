/**
 * Dice vs epsilon: one federated scenario without DP and with client-level DP-FedAvg at several target epsilons,
 * central (the coordinator adds the noise) and/or distributed (secure aggregation; the sites add discrete Gaussian
 * shares). Each variant is a full multi-process `fedsfda simulate` run; the noise multiplier for each epsilon is
 * calibrated by the accountant over the scenario's rounds (q = 1: every site in every round). Prints one JSON line
 * per run and a summary JSON at the end.
 *
 *   npx tsx scripts/bench-dp.ts --config simulations/scenarios/default.json --clip 0.5 --epsilons 1,3,8 \
 *     --modes none,central,distributed --out runs/dp-bench [--delta 1e-5]
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { loadScenarioFile, parseFederatedScenario, type FederatedScenario } from '../simulations/scenario.ts';
import { runFederatedSimulation } from '../simulations/runner/run-federated.ts';
import { badOption, scriptOptions } from './script-options.ts';

type Mode = 'none' | 'central' | 'distributed';

const SCRIPT = 'bench-dp';
const USAGE = '--config SCENARIO --clip C [--epsilons 1,3,8] [--modes none,central,distributed] [--delta D] [--out DIR]';
const values = scriptOptions(
  SCRIPT,
  {
    config: { type: 'string' },
    clip: { type: 'string' },
    epsilons: { type: 'string', default: '1,3,8' },
    modes: { type: 'string', default: 'none,central,distributed' },
    delta: { type: 'string', default: '1e-5' },
    out: { type: 'string', default: 'runs/dp-bench' },
  },
  USAGE,
);
if (!values.config || !values.clip) badOption(SCRIPT, '--config and --clip are required', USAGE);
const clip = Number(values.clip);
const delta = Number(values.delta);
const epsilons = values.epsilons!.split(',').map(Number);
const modes = values.modes!.split(',') as Mode[];
for (const m of modes) if (!['none', 'central', 'distributed'].includes(m)) badOption(SCRIPT, `--modes: unknown mode ${JSON.stringify(m)}`, USAGE);

const file = resolve(values.config);
const base = parseFederatedScenario(file, (await loadScenarioFile(file)).raw);
const secure = base.training.secureAggregation ?? { clip: 8, maxExamples: 1000 };

function variant(mode: Mode, epsilon: number | null): FederatedScenario {
  const { secureAggregation: _s, differentialPrivacy: _d, ...training } = base.training;
  const dp = epsilon === null ? {} : { differentialPrivacy: { targetEpsilon: epsilon, delta, clip } };
  return { ...base, name: `${base.name} [${mode}${epsilon === null ? '' : ` eps ${epsilon}`}]`, training: { ...training, ...(mode === 'distributed' ? { secureAggregation: secure } : {}), ...dp } };
}

const runs: { mode: Mode; epsilon: number | null }[] = [];
for (const mode of modes) {
  if (mode === 'none') runs.push({ mode, epsilon: null });
  else for (const e of epsilons) runs.push({ mode, epsilon: e });
}
const rows = [];
for (const r of runs) {
  const scenario = variant(r.mode, r.epsilon);
  const outDir = resolve(values.out!, `${r.mode}${r.epsilon === null ? '' : `-eps${r.epsilon}`}`);
  await mkdir(outDir, { recursive: true });
  const scenarioFile = join(outDir, 'scenario.json');
  await writeFile(scenarioFile, JSON.stringify(scenario, null, 2));
  const t0 = Date.now();
  const s = await runFederatedSimulation({ scenarioFile, scenario, outDir });
  const row = {
    mode: r.mode,
    targetEpsilon: r.epsilon,
    epsilon: s.privacy?.epsilon ?? null,
    delta: s.privacy?.delta ?? null,
    noiseMultiplier: s.privacy?.noiseMultiplier ?? null,
    clip: s.privacy?.clip ?? null,
    rounds: s.rounds.length,
    sites: s.sites.length,
    meanDice: s.meanDice,
    worstSiteDice: Math.min(...s.sites.map((x) => x.dice.mean ?? NaN)),
    untrainedDice: s.meanUntrainedDice,
    wallS: (Date.now() - t0) / 1000,
  };
  rows.push(row);
  console.log(JSON.stringify(row));
}
const summary = { scenario: base.name, clip, delta, rows };
await writeFile(resolve(values.out!, 'dp-bench.json'), JSON.stringify(summary, null, 2));
console.log(JSON.stringify(summary));
