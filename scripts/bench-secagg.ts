/**
 * Benchmark: secure aggregation (SecAgg+, protocol/secagg) against plain FedAvg, in two layers. Prints JSON lines.
 *
 * 1. kind "protocol": one SecAgg+ round over n simulated sites in one process vs a plain sum of the same vectors.
 *    - secureMs / plainMs: total compute of the round with all n sites and the coordinator run one after another on
 *      one core (synthetic input generation excluded; after one discarded warm-up round). Lower bound of the ratio: each site expands k + 1 XSalsa20
 *      masks of the model's length where the plain round adds the vector once.
 *    - criticalPathMs: the round's compute when sites work concurrently, as in a federation:
 *      sum over stages of (slowest site's work + coordinator's work), plus the final unmasking. The plain round's
 *      critical path is the coordinator's sum (sites do nothing extra), i.e. plainMs.
 *    - bytesPerSite: mean payload a site sends (messageBytes: compact framing, no session envelope);
 *      ratio = bytesPerSite / modelBytes (float32 model).
 * 2. kind "live": the real product, a socket.io coordinator on 127.0.0.1 and n in-process sites, a model of
 *    `params` float32 values and a trainer that does no training (adds a constant), R rounds, first with plain
 *    FedAvg then with secureAggregation in the same run. roundMs = wall time of a round (fit + evaluate: encode,
 *    seal, transfer, open, decode, mask, aggregate; no training), fitMs = its fit phase (where the two differ).
 *    All n sites share this process and its 2 cores, so the round time includes every site's work serially.
 *
 *   npx tsx scripts/bench-secagg.ts [--json] [--n 10,50,100] [--params 1000000] [--live-n 10|none] [--live-rounds 4]
 */
import { runNoTrainingRounds } from '../simulations/benchmarks/bench-rounds.ts';
import { symmetricBackend } from '../protocol/sodium.ts';
import {
  applyKeystream,
  makeSimulatedSites,
  maxSafeScaleBits,
  quantizationErrorBound,
  runSecAggRound,
} from '../protocol/secagg/index.ts';

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1] : fallback;
}

const sizes = arg('n', '10,50,100').split(',').map(Number);
const liveArg = arg('live-n', '10');
const liveSizes = liveArg === 'none' ? [] : liveArg.split(',').map(Number);
const liveRounds = Number(arg('live-rounds', '4'));
const params = Number(arg('params', '1000000'));
const jsonOnly = process.argv.includes('--json');

/** Deterministic synthetic update for site i (xorshift32; test data only, not used for any mask). */
function siteVector(i: number, len: number): Float32Array {
  const v = new Float32Array(len);
  let s = (0x9e3779b9 ^ (i * 0x85ebca6b)) >>> 0 || 1;
  for (let j = 0; j < len; j++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    v[j] = (s / 2 ** 32 - 0.5) * 0.2;
  }
  return v;
}

/** Plain round: the coordinator sums every site's float vector (in a function so that V8 optimizes the loop). */
function plainRound(n: number): { plain: Float64Array; plainMs: number } {
  const plain = new Float64Array(params);
  let ms = 0;
  for (let i = 0; i < n; i++) {
    const v = siteVector(i, params);
    const t = performance.now();
    for (let j = 0; j < params; j++) plain[j] += v[j];
    ms += performance.now() - t;
  }
  return { plain, plainMs: ms };
}

/**
 * Machine state in the same run: XSalsa20 mask expansion and a plain float add, ms per 1M words. Each site's
 * masking costs about (k + 1) expansions, the plain round one add per site, which bounds secureMs / plainMs.
 */
function rates(): { keystreamMsPerM: number; addMsPerM: number } {
  const target = new Uint32Array(1_000_000);
  const seed = new Uint8Array(32).fill(7);
  const nonce = new Uint8Array(24);
  applyKeystream(target, seed, nonce, 1);
  let t = performance.now();
  for (let r = 0; r < 5; r++) applyKeystream(target, seed, nonce, 1);
  const keystreamMsPerM = (performance.now() - t) / 5;
  const a = new Float32Array(1_000_000);
  const b = new Float32Array(1_000_000).fill(0.5);
  t = performance.now();
  for (let r = 0; r < 5; r++) for (let j = 0; j < a.length; j++) a[j] += b[j];
  const addMsPerM = (performance.now() - t) / 5;
  return { keystreamMsPerM: Math.round(keystreamMsPerM * 10) / 10, addMsPerM: Math.round(addMsPerM * 10) / 10 };
}

// Warm-up (discarded): one round at the smallest n, so that every n is measured with optimized code.
{
  const n = Math.min(...sizes);
  plainRound(n);
  await runSecAggRound(makeSimulatedSites(n, (i) => siteVector(i, params)), {
    vectorLength: params,
    quant: { clip: 1, scaleBits: maxSafeScaleBits(1, n) },
  });
}

for (const n of sizes) {
  const clip = 1;
  const quant = { clip, scaleBits: maxSafeScaleBits(clip, n) };

  const { plain, plainMs } = plainRound(n);

  let secureGenMs = 0;
  const sites = makeSimulatedSites(n, (i) => {
    const g = performance.now();
    const v = siteVector(i, params);
    secureGenMs += performance.now() - g;
    return v;
  });
  const t0 = performance.now();
  const report = await runSecAggRound(sites, { vectorLength: params, quant });
  const secureMs = performance.now() - t0 - secureGenMs;

  // Stated bound (protocol/secagg/quantize.ts): n * 2^-(s+1) plus the float32 rounding of the output.
  let maxAbsErr = 0;
  let maxAbs = 0;
  for (let j = 0; j < params; j++) {
    maxAbsErr = Math.max(maxAbsErr, Math.abs(report.sum[j] - plain[j]));
    maxAbs = Math.max(maxAbs, Math.abs(plain[j]));
  }
  // Concurrent sites: per stage the slowest site, then the coordinator; plus the final unmasking.
  let criticalPathMs = report.coordinatorMs.finish;
  for (const [stage, coordMs] of Object.entries(report.coordinatorMs)) {
    if (stage === 'finish') continue;
    let slowest = 0;
    for (const m of report.siteMs.values()) slowest = Math.max(slowest, m[stage as keyof typeof m]);
    criticalPathMs += slowest + coordMs;
  }
  let sent = 0;
  let received = 0;
  for (const b of report.bytesSent.values()) sent += b;
  for (const b of report.bytesReceived.values()) received += b;
  const bytesPerSite = Math.round(sent / n);
  const modelBytes = params * 4;
  const line = {
    kind: 'protocol',
    symmetricBackend: symmetricBackend().name,
    n,
    params,
    secureMs: Math.round(secureMs),
    plainMs: Math.round(plainMs * 10) / 10,
    serialRatio: Math.round((secureMs / plainMs) * 10) / 10,
    criticalPathMs: Math.round(criticalPathMs),
    criticalPathRatio: Math.round((criticalPathMs / plainMs) * 10) / 10,
    bytesPerSite,
    modelBytes,
    ratio: Math.round((bytesPerSite / modelBytes) * 10000) / 10000,
    bytesReceivedPerSite: Math.round(received / n),
    degree: report.config.degree,
    threshold: report.config.threshold,
    scaleBits: quant.scaleBits,
    maxAbsErr,
    errBound: quantizationErrorBound(quant, n) + maxAbs * 2 ** -24,
    stageMs: Object.fromEntries(Object.entries(report.stageMs).map(([k, v]) => [k, Math.round(v)])),
    rssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
    ...rates(),
  };
  console.log(JSON.stringify(line));
  if (!jsonOnly) {
    console.error(
      `n=${n}: secure ${line.secureMs} ms vs plain ${line.plainMs} ms (x${line.serialRatio}; concurrent sites ` +
        `${line.criticalPathMs} ms, x${line.criticalPathRatio}), ` +
        `${bytesPerSite} B/site = ${line.ratio} x model, max error ${maxAbsErr.toExponential(2)} <= ${line.errBound.toExponential(2)}`,
    );
  }
}

/** Median of the rounds after the first (which includes warm-up: JIT, first model download). */
function steadyMedian(xs: number[]): number {
  const rest = (xs.length > 1 ? xs.slice(1) : xs).slice().sort((a, b) => a - b);
  return Math.round(rest[Math.floor((rest.length - 1) / 2)]);
}

async function liveRun(n: number, secure: boolean): Promise<{ roundMs: number[]; fitMs: number[] }> {
  return runNoTrainingRounds({ params, sites: n, rounds: liveRounds, ...(secure ? { secure: { clip: 1, maxExamples: 100 } } : {}) });
}

for (const n of liveSizes) {
  const plain = await liveRun(n, false);
  const secure = await liveRun(n, true);
  const line = {
    kind: 'live',
    symmetricBackend: symmetricBackend().name,
    n,
    params,
    rounds: liveRounds,
    plainRoundMs: steadyMedian(plain.roundMs),
    secureRoundMs: steadyMedian(secure.roundMs),
    roundRatio: Math.round((steadyMedian(secure.roundMs) / steadyMedian(plain.roundMs)) * 100) / 100,
    plainFitMs: steadyMedian(plain.fitMs),
    secureFitMs: steadyMedian(secure.fitMs),
    fitRatio: Math.round((steadyMedian(secure.fitMs) / steadyMedian(plain.fitMs)) * 100) / 100,
    allRounds: { plain: plain.roundMs.map(Math.round), secure: secure.roundMs.map(Math.round) },
    rssMB: Math.round(process.memoryUsage().rss / 2 ** 20),
  };
  console.log(JSON.stringify(line));
  if (!jsonOnly) {
    console.error(
      `live n=${n}: round secure ${line.secureRoundMs} ms vs plain ${line.plainRoundMs} ms (x${line.roundRatio}); ` +
        `fit phase ${line.secureFitMs} vs ${line.plainFitMs} ms (x${line.fitRatio})`,
    );
  }
}
