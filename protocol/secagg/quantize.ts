/**
 * Fixed-point quantization of float vectors into Z_2^32 (Bonawitz et al., CCS 2017, Sec. 3: inputs are vectors
 * over Z_R; Bell et al., CCS 2020, Sec. 5 use the same reduction for real-valued updates).
 *
 * Encoding (two's complement, so that sums of signed values need no offset bookkeeping):
 *   q(x) = round(clamp(x, -clip, +clip) * 2^scaleBits)  as a signed integer, stored mod 2^32.
 * Every quantized entry therefore lies in [-L, +L] with L = round(clip * 2^scaleBits).
 * The sum of n such entries lies in [-nL, +nL]; it is decoded without wrap-around iff n * L <= 2^31 - 1, which
 * `checkQuantConfig` enforces BEFORE a round starts (code `bad-config`).
 *
 * Error bound (stated and tested): for inputs already inside [-clip, clip], each q(x) differs from x * 2^s by at
 * most 1/2, so the decoded aggregate satisfies
 *   | dequantizeSum(sum_i q(x_i)) - sum_i x_i |  <=  n * 2^-(scaleBits+1)  +  |result| * 2^-24
 * where the second term is the float32 rounding of the returned Float32Array (the integer sum itself is exact).
 * Values outside [-clip, clip] are clipped first: the aggregate is then that of the clipped inputs.
 */
import { SecAggError } from './errors.ts';

export interface QuantConfig {
  /** Symmetric clipping range: every input value is clamped to [-clip, +clip] before quantization. */
  readonly clip: number;
  /** Fixed-point fraction bits: the quantization step is 2^-scaleBits. */
  readonly scaleBits: number;
}

/** Largest positive value of a signed 32-bit two's-complement sum. */
const INT32_MAX = 2 ** 31 - 1;

/** L = round(clip * 2^scaleBits), the largest magnitude of one quantized entry. */
export function quantLevel(cfg: QuantConfig): number {
  return Math.round(cfg.clip * 2 ** cfg.scaleBits);
}

/**
 * Refuses any configuration where the sum of `numSites` quantized vectors could wrap around Z_2^32
 * (n * L > 2^31 - 1) or where clip/scaleBits are not sensible numbers.
 */
export function checkQuantConfig(cfg: QuantConfig, numSites: number): void {
  if (!Number.isFinite(cfg.clip) || cfg.clip <= 0) {
    throw new SecAggError('bad-config', `quantization clip must be a finite positive number, got ${cfg.clip}`);
  }
  if (!Number.isInteger(cfg.scaleBits) || cfg.scaleBits < 0 || cfg.scaleBits > 30) {
    throw new SecAggError('bad-config', `quantization scaleBits must be an integer in [0, 30], got ${cfg.scaleBits}`);
  }
  if (!Number.isInteger(numSites) || numSites < 1) {
    throw new SecAggError('bad-config', `number of sites must be a positive integer, got ${numSites}`);
  }
  const level = quantLevel(cfg);
  if (level < 1) {
    throw new SecAggError('bad-config', `clip ${cfg.clip} at scaleBits ${cfg.scaleBits} quantizes to zero levels`);
  }
  if (numSites * level > INT32_MAX) {
    throw new SecAggError(
      'bad-config',
      `n * range wraps around Z_2^32: ${numSites} sites x ${level} levels (clip ${cfg.clip}, scaleBits ` +
        `${cfg.scaleBits}) = ${numSites * level} > 2^31-1; lower scaleBits to at most ` +
        `${Math.max(0, Math.floor(Math.log2(INT32_MAX / numSites / cfg.clip)))} or the clip range`,
    );
  }
}

/** Largest scaleBits for which `numSites` sums of values clipped to `clip` cannot wrap (the finest safe step). */
export function maxSafeScaleBits(clip: number, numSites: number): number {
  let s = Math.floor(Math.log2(INT32_MAX / (numSites * clip)));
  while (s > 0 && numSites * Math.round(clip * 2 ** s) > INT32_MAX) s--;
  return Math.max(0, Math.min(30, s));
}

/** The stated worst-case absolute error of an n-site aggregate before the float32 output rounding. */
export function quantizationErrorBound(cfg: QuantConfig, numSites: number): number {
  return numSites * 2 ** -(cfg.scaleBits + 1);
}

/** q(x) for every entry: clamp, scale, round half away from zero, store mod 2^32. NaN/Infinity are refused. */
export function quantize(v: Float32Array, cfg: QuantConfig): Uint32Array {
  const out = new Int32Array(v.length); // |q| <= L < 2^31: int32 stores stay on V8's fast path
  const scale = 2 ** cfg.scaleBits;
  // Scaling by a power of two is exact and monotone, so clamp(x * 2^s, clip * 2^s) = clamp(x, clip) * 2^s.
  const lim = cfg.clip * scale;
  for (let i = 0; i < v.length; i++) {
    const r = v[i] * scale;
    if (r - r !== 0) {
      throw new SecAggError('bad-input', `input vector has a non-finite value (${v[i]}) at index ${i}`);
    }
    const c = r > lim ? lim : r < -lim ? -lim : r;
    // Math.round rounds .5 towards +inf; symmetric rounding keeps the error bound identical for +x and -x.
    out[i] = c >= 0 ? Math.round(c) : -Math.round(-c);
  }
  return new Uint32Array(out.buffer);
}

/**
 * Decodes a sum of quantized vectors (mod 2^32) back to floats: reinterpret as signed 32-bit, divide by 2^s.
 * Only meaningful when `checkQuantConfig(cfg, n)` passed for the number of summed vectors.
 */
export function dequantizeSum(sum: Uint32Array, cfg: QuantConfig): Float32Array {
  const signed = new Int32Array(sum.buffer, sum.byteOffset, sum.length);
  const out = new Float32Array(sum.length);
  const inv = 2 ** -cfg.scaleBits;
  for (let i = 0; i < sum.length; i++) out[i] = signed[i] * inv;
  return out;
}
