/**
 * Continuous Gaussian noise for central DP (the coordinator adds it to an un-noised aggregate).
 *
 * Box-Muller transform on 53-bit uniforms from a ChaCha20 stream (noise-source.ts). Floating-point Gaussian
 * samplers leak a little through the low bits of the result (Mironov, CCS 2012, showed it for Laplace); the
 * released model is float32 and the noise std is many ulps of it, so this is the accepted practice of Opacus and
 * Flower. Where the aggregate is integer (secure aggregation) the exact discrete Gaussian is used instead
 * (discrete-gaussian.ts).
 */
import type { NoiseSource } from './noise-source.ts';

/** One pair of independent N(0, 1) draws (Box & Muller 1958). */
function normalPair(src: NoiseSource): [number, number] {
  const r = Math.sqrt(-2 * Math.log(src.nextOpenDouble()));
  const theta = 2 * Math.PI * src.nextDouble();
  return [r * Math.cos(theta), r * Math.sin(theta)];
}

/** Fills `out` with independent N(0, std^2) draws. */
export function fillGaussian(out: Float64Array | Float32Array, std: number, src: NoiseSource): void {
  if (!(std >= 0) || !Number.isFinite(std)) throw new RangeError(`noise std must be a finite number >= 0, got ${std}`);
  for (let i = 0; i < out.length; i += 2) {
    const [a, b] = normalPair(src);
    out[i] = a * std;
    if (i + 1 < out.length) out[i + 1] = b * std;
  }
}

/** Adds N(0, std^2) to every entry of `v` in place. */
export function addGaussianNoise(v: Float32Array | Float64Array, std: number, src: NoiseSource): void {
  if (std === 0) return;
  const noise = new Float64Array(v.length);
  fillGaussian(noise, std, src);
  for (let i = 0; i < v.length; i++) v[i] += noise[i];
}

/** One N(0, std^2) draw. */
export function gaussian(std: number, src: NoiseSource): number {
  return normalPair(src)[0] * std;
}
