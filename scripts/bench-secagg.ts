/**
 * Benchmark: one secure-aggregation round (SecAgg+, protocol/secagg) vs a plain sum of the same vectors, for
 * n simulated sites in one process. Prints one JSON line per n:
 *   {"n","params","secureMs","plainMs","bytesPerSite","modelBytes","ratio", ...extras}
 * secureMs / plainMs are compute time of the whole round (all sites + coordinator, run one after another on one
 * core), excluding the generation of the synthetic input vectors; bytesPerSite is the mean payload a site sends
 * (messageBytes: compact framing, no session envelope); ratio = bytesPerSite / modelBytes (float32 model).
 *
 *   npx tsx scripts/bench-secagg.ts [--json] [--n 10,50,100] [--params 1000000]
 */
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
  let sent = 0;
  let received = 0;
  for (const b of report.bytesSent.values()) sent += b;
  for (const b of report.bytesReceived.values()) received += b;
  const bytesPerSite = Math.round(sent / n);
  const modelBytes = params * 4;
  const line = {
    n,
    params,
    secureMs: Math.round(secureMs),
    plainMs: Math.round(plainMs * 10) / 10,
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
      `n=${n}: secure ${line.secureMs} ms vs plain ${line.plainMs} ms (x${(secureMs / plainMs).toFixed(1)}), ` +
        `${bytesPerSite} B/site = ${line.ratio} x model, max error ${maxAbsErr.toExponential(2)} <= ${line.errBound.toExponential(2)}`,
    );
  }
}
