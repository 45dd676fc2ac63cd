/**
 * How long the site agent's evaluation and source-statistics passes hold the event loop (issue 11): a socket.io
 * heartbeat cannot be answered while they do. Builds one site of a scenario (its data and its U-Net, as
 * `fedsfda simulate` does), then runs each pass twice: synchronously (what the site ran before the passes yielded)
 * and as the site agent runs it now (UNetTrainer.evaluate / .statistics, yielding between batches). Reports the
 * wall time of each and the longest event-loop block measured meanwhile (the longest gap between ticks of a 1 ms timer).
 *
 *   node --import tsx scripts/reliability-pass-blocking.ts [--scenario simulations/scenarios/default.json] [--site 0] [--repeat 3]
 */
import { SOURCE_STATS_REQUEST } from '../protocol/index.ts';
import { loadScenarioFile, parseFederatedScenario } from '../simulations/scenario.ts';
import { buildSiteData } from '../simulations/runner/site-data.ts';
import { computeSourceStats } from '../site-agent/adapt/index.ts';
import { UNetTrainer } from '../site-agent/client/index.ts';
import { initEngine } from '../site-agent/engine/index.ts';
import { evaluateVolumes } from '../site-agent/evaluation/index.ts';
import { intOption, scriptOptions } from './script-options.ts';

const SCRIPT = 'reliability-pass-blocking';

async function measure(label: string, pass: () => unknown): Promise<{ label: string; wallMs: number; longestBlockMs: number }> {
  // A 1 ms interval timer: the longest gap between its ticks is the longest the event loop was held.
  let last = performance.now();
  let longest = 0;
  const probe = setInterval(() => {
    const now = performance.now();
    longest = Math.max(longest, now - last);
    last = now;
  }, 1);
  await new Promise((r) => setTimeout(r, 20));
  longest = 0;
  const t0 = performance.now();
  await pass();
  const wallMs = performance.now() - t0;
  await new Promise((r) => setTimeout(r, 20)); // the tick right after a synchronous pass carries its whole block
  clearInterval(probe);
  return { label, wallMs: Math.round(wallMs), longestBlockMs: Math.round(longest) };
}

async function main(): Promise<void> {
  const values = scriptOptions(
    SCRIPT,
    { scenario: { type: 'string', default: 'simulations/scenarios/default.json' }, site: { type: 'string', default: '0' }, repeat: { type: 'string', default: '3' } },
    '[--scenario FILE] [--site INDEX] [--repeat N]',
  );
  const file = values.scenario!;
  const { raw, text } = await loadScenarioFile(file);
  const scenario = parseFederatedScenario(file, raw, text);
  const engine = await initEngine();
  const data = await buildSiteData(scenario, intOption(SCRIPT, 'site', values.site));
  const trainer = new UNetTrainer({
    model: { inChannels: data.train.channels, numClasses: scenario.data.numClasses, baseChannels: scenario.model.baseChannels, depth: scenario.model.depth },
    train: data.train,
    val: data.val,
    batchSize: scenario.training.batchSize,
    optimizer: scenario.training.optimizer,
    loss: scenario.training.loss,
    seed: scenario.seed,
  });
  const global = trainer.unet.getWeights();
  await trainer.evaluate(global); // warm-up: plan compilation, first-call costs
  const passes: [string, () => unknown][] = [
    ['evaluate, synchronous (before)', () => evaluateVolumes(trainer.unet, data.val)],
    ['evaluate, yielding (site agent now)', () => trainer.evaluate(global)],
    ['source-stats, synchronous (before)', () => computeSourceStats(trainer.unet, data.train, { confidence: 0.97 })],
    ['source-stats, yielding (site agent now)', () => trainer.statistics(global, { name: SOURCE_STATS_REQUEST, config: { scale: 1, confidence: 0.97 } })],
  ];
  // Each pass `repeat` times, interleaved (a shared machine's load drifts); the median of each is reported.
  const samples = new Map<string, { wallMs: number; longestBlockMs: number }[]>();
  for (let i = 0; i < intOption(SCRIPT, 'repeat', values.repeat, 1); i++) {
    for (const [label, pass] of passes) {
      const { wallMs, longestBlockMs } = await measure(label, pass);
      samples.set(label, [...(samples.get(label) ?? []), { wallMs, longestBlockMs }]);
    }
  }
  const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const rows = [...samples].map(([label, xs]) => ({ label, wallMs: median(xs.map((x) => x.wallMs)), longestBlockMs: median(xs.map((x) => x.longestBlockMs)), samples: xs }));
  console.log(JSON.stringify({ scenario: file, backend: engine.backend, valSlices: data.val.n, trainSlices: data.train.n, size: `${data.val.height}x${data.val.width}`, rows }, null, 2));
}

main().then(
  () => process.exit(0),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
