/**
 * Scales for summed statistics whose magnitude is not known in advance (sums of squares and outer products of a
 * model's activations: a differentially private model's noised weights and batch-norm statistics can make them
 * arbitrarily large, so no fixed clip range fits every model).
 *
 * Two masked sums instead of one, both at clip 1:
 *  1. range: each site encodes, per named vector, the power of two that bounds its largest magnitude as a one-hot
 *     vector over exponents; the masked sum is a histogram (how many sites fall in each power of two, not which),
 *     and the coordinator takes the highest exponent present: e = ceil(log2(max over sites of max |v|)).
 *  2. values: each site multiplies the named vector by 2^-e (exact in floating point), so every value lies in
 *     [-1, 1]; the coordinator multiplies the sum by 2^e.
 * The quantization step is then 2^-scaleBits of each vector's own bound (Bonawitz et al., CCS 2017, Sec. 3: inputs
 * over Z_R; quantize.ts states the error bound), instead of a step fixed by the largest clip any model might need.
 */
import { SecAggError } from './errors.ts';

/** Smallest exponent: vectors bounded by 2^-64 (or all zero) are sent at this scale. */
export const RANGE_MIN_EXP = -64;
/** Largest exponent: a value above 2^64 is refused (it is no statistic of real data). */
export const RANGE_MAX_EXP = 64;
/** Entries of one vector's one-hot exponent encoding. */
export const RANGE_BUCKETS = RANGE_MAX_EXP - RANGE_MIN_EXP + 1;

/** The smallest e in [RANGE_MIN_EXP, RANGE_MAX_EXP] with max |v| <= 2^e; refuses NaN, Infinity and > 2^64. */
export function exponentBound(name: string, v: Float32Array): number {
  let max = 0;
  for (let i = 0; i < v.length; i++) {
    const a = Math.abs(v[i]);
    if (!Number.isFinite(a)) throw new SecAggError('bad-input', `statistic "${name}" holds a non-finite value (${v[i]})`);
    if (a > max) max = a;
  }
  if (max > 2 ** RANGE_MAX_EXP) throw new SecAggError('bad-input', `statistic "${name}" holds ${max}, above the largest supported bound 2^${RANGE_MAX_EXP}`);
  if (max <= 2 ** RANGE_MIN_EXP) return RANGE_MIN_EXP;
  let e = Math.ceil(Math.log2(max));
  // log2 of a float is rounded: settle on the exact smallest power of two that bounds max.
  while (2 ** e < max) e++;
  while (e > RANGE_MIN_EXP && 2 ** (e - 1) >= max) e--;
  return e;
}

/** Stage 1 input: per named vector, a one-hot vector of RANGE_BUCKETS entries at its exponent bound. */
export function rangeVectors(values: Readonly<Record<string, Float32Array>>): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(values)) {
    const oneHot = new Float32Array(RANGE_BUCKETS);
    oneHot[exponentBound(name, v) - RANGE_MIN_EXP] = 1;
    out[name] = oneHot;
  }
  return out;
}

/** The coordinator's reading of the summed histograms: per name, the highest exponent any included site needs. */
export function exponentsFromRangeSums(sums: Readonly<Record<string, Float32Array>>): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [name, hist] of Object.entries(sums)) {
    if (hist.length !== RANGE_BUCKETS) throw new SecAggError('bad-input', `range histogram "${name}" has ${hist.length} entries, expected ${RANGE_BUCKETS}`);
    let top = -1;
    // Each site adds exactly 1 to one bucket; a quantized sum is within far less than 1/2 of the count.
    for (let b = 0; b < RANGE_BUCKETS; b++) if (hist[b] > 0.5) top = b;
    if (top < 0) throw new SecAggError('bad-input', `range histogram "${name}" counts no site`);
    out[name] = RANGE_MIN_EXP + top;
  }
  return out;
}

/** Checks an exponent received on the wire or read from a histogram. */
export function checkExponent(name: string, e: number): void {
  if (!Number.isInteger(e) || e < RANGE_MIN_EXP || e > RANGE_MAX_EXP) {
    throw new SecAggError('bad-config', `exponent of "${name}" must be an integer in [${RANGE_MIN_EXP}, ${RANGE_MAX_EXP}], got ${e}`);
  }
}

/** Every named vector times 2^(sign * e[name]) (exact: a power-of-two scaling of float32 values in range). */
export function scaleByExponents(values: Readonly<Record<string, Float32Array>>, exponents: Readonly<Record<string, number>>, sign: 1 | -1): Record<string, Float32Array> {
  const out: Record<string, Float32Array> = {};
  for (const [name, v] of Object.entries(values)) {
    const e = exponents[name];
    if (e === undefined) throw new SecAggError('bad-input', `no exponent for statistic "${name}"`);
    checkExponent(name, e);
    const f = 2 ** (sign * e);
    out[name] = Float32Array.from(v, (x) => x * f);
  }
  return out;
}
