/**
 * Target-agnostic random intensity maps for source-side domain randomisation (used by intensity-augment.ts):
 * GIN and its IPA blend (Ouyang et al., "Causality-inspired single-source domain generalization for medical image
 * segmentation", IEEE TMI 2022, sec. III-A and III-B) and a random smooth multiplicative bias field.
 *
 * Rescaling choice: the paper rescales the GIN output to the input's Frobenius norm (its images are non-negative, so
 * that keeps the overall brightness). Our slices are z-scored by the dataset loader (mean ~0 on real anatomy), where a
 * Frobenius match would let GIN's random offset survive as a DC shift that the loader's normalisation removes from any
 * real scan. We therefore match the slice's own mean and standard deviation: the output is what the product's z-score
 * normalisation would make of a scan with the new contrast. The net also sees the slice standardised (mean 0, std 1),
 * so its N(0,1) biases act at the same scale on phantoms ([0, 1]) and real anatomy (z-scored).
 */
import { z } from 'zod';
import type { Rng } from '../../protocol/common/index.ts';

/** GIN (sec. III-A) and its IPA blend (sec. III-B). */
export const GinSchema = z
  .object({
    /** Probability per slice of a GIN map. */
    prob: z.number().min(0).max(1).default(0.5),
    /** Conv layers of the random net (the paper: 4). */
    layers: z.number().int().min(1).max(8).default(4),
    /** Channels of every hidden layer (the paper's code: 2). */
    hiddenChannels: z.number().int().min(1).max(16).default(2),
    /** Each layer's kernel size drawn from these (the paper: {1, 3}); [1] alone makes a pointwise intensity map. */
    kernelSizes: z.array(z.union([z.literal(1), z.literal(3)])).min(1).default([1, 3]),
    /** LeakyReLU slope between layers (PyTorch's default 0.01, as in the paper's code). */
    leak: z.number().min(0).max(1).default(0.01),
    /** Probability, given a GIN map, of IPA: two GIN outputs blended by a random smooth mask instead of one. */
    ipaProb: z.number().min(0).max(1).default(0),
    /** The IPA mask's control grid (grid x grid uniform values, bilinearly upsampled): lower = smoother. */
    ipaGrid: z.number().int().min(2).max(16).default(4),
  })
  .strict();

/** A random smooth multiplicative bias field. */
export const BiasFieldAugmentSchema = z
  .object({
    /** Probability per slice. */
    prob: z.number().min(0).max(1).default(0.5),
    /** Log-strength s uniform in [0, strengthMax]; the field is exp(s b) with b a smooth field in [-1, 1]. */
    strengthMax: z.number().min(0).max(3).default(0.6),
    /** The field's control grid (grid x grid values, bilinearly upsampled): lower = smoother. */
    grid: z.number().int().min(2).max(16).default(3),
  })
  .strict();

export type GinOptions = z.infer<typeof GinSchema>;
export type BiasFieldAugmentOptions = z.infer<typeof BiasFieldAugmentSchema>;

function meanStd(x: Float32Array): { mean: number; std: number } {
  let m = 0;
  for (let i = 0; i < x.length; i++) m += x[i];
  m /= x.length;
  let v = 0;
  for (let i = 0; i < x.length; i++) v += (x[i] - m) ** 2;
  return { mean: m, std: Math.sqrt(v / x.length) };
}

/** Writes `src` into `dst` rescaled to mean `mean` and std `std`; false (dst untouched) when `src` is (near) constant. */
function matchMoments(src: Float32Array, dst: Float32Array, mean: number, std: number): boolean {
  const s = meanStd(src);
  if (!(s.std > 1e-6 * Math.max(std, 1e-12)) || !Number.isFinite(s.std)) return false;
  const k = std / s.std;
  for (let i = 0; i < dst.length; i++) dst[i] = mean + k * (src[i] - s.mean);
  return true;
}

/** One conv layer, replicate padding (no border artefacts from zeros), N(0,1) weights and bias. */
function randomConv(input: Float32Array[], h: number, w: number, outChannels: number, k: 1 | 3, rng: Rng): Float32Array[] {
  const r = (k - 1) / 2;
  const out: Float32Array[] = [];
  for (let o = 0; o < outChannels; o++) {
    const y = new Float32Array(h * w).fill(rng.normal());
    for (let c = 0; c < input.length; c++) {
      const x = input[c];
      for (let dy = -r; dy <= r; dy++) {
        for (let dx = -r; dx <= r; dx++) {
          const wt = rng.normal();
          for (let i = 0; i < h; i++) {
            const si = Math.min(h - 1, Math.max(0, i + dy)) * w;
            const row = i * w;
            for (let j = 0; j < w; j++) y[row + j] += wt * x[si + Math.min(w - 1, Math.max(0, j + dx))];
          }
        }
      }
    }
    out.push(y);
  }
  return out;
}

/**
 * g(u) of GIN (sec. III-A): `layers` random convs, 1 -> C -> ... -> C -> 1 channels, LeakyReLU between them (none after
 * the last), every weight and bias re-drawn from N(0, 1) per call.
 */
export function ginNet(u: Float32Array, h: number, w: number, o: GinOptions, rng: Rng): Float32Array {
  let x: Float32Array[] = [u];
  for (let l = 0; l < o.layers; l++) {
    const last = l === o.layers - 1;
    const k = o.kernelSizes[rng.int(o.kernelSizes.length)];
    x = randomConv(x, h, w, last ? 1 : o.hiddenChannels, k, rng);
    if (!last) for (const ch of x) for (let i = 0; i < ch.length; i++) if (ch[i] < 0) ch[i] *= o.leak;
  }
  return x[0];
}

/**
 * One GIN view of the standardised slice u (sec. III-A, eq. for x'): x' = a g(u) + (1 - a) u, a ~ U(0, 1), rescaled
 * to the slice's mean and std. Null when the mix is (near) constant (the caller keeps the slice).
 */
function ginView(u: Float32Array, h: number, w: number, mean: number, std: number, o: GinOptions, rng: Rng): Float32Array | null {
  const g = ginNet(u, h, w, o, rng);
  const a = rng.next();
  for (let i = 0; i < g.length; i++) g[i] = a * g[i] + (1 - a) * u[i];
  const out = new Float32Array(g.length);
  return matchMoments(g, out, mean, std) ? out : null;
}

/**
 * A smooth random field on h x w: a grid x grid lattice of U(lo, hi) values, bilinearly interpolated (corners on the
 * corner pixels' centres). Values stay in [lo, hi]; neighbouring pixels differ by at most (hi - lo)(grid - 1)/(size - 1)
 * along each axis.
 */
export function smoothRandomField(h: number, w: number, grid: number, lo: number, hi: number, rng: Rng): Float32Array {
  const c = Array.from({ length: grid * grid }, () => rng.uniform(lo, hi));
  const f = new Float32Array(h * w);
  for (let i = 0; i < h; i++) {
    const ty = h > 1 ? (i / (h - 1)) * (grid - 1) : 0;
    const y0 = Math.min(grid - 2, Math.floor(ty));
    const fy = ty - y0;
    for (let j = 0; j < w; j++) {
      const tx = w > 1 ? (j / (w - 1)) * (grid - 1) : 0;
      const x0 = Math.min(grid - 2, Math.floor(tx));
      const fx = tx - x0;
      const top = (1 - fx) * c[y0 * grid + x0] + fx * c[y0 * grid + x0 + 1];
      const bottom = (1 - fx) * c[(y0 + 1) * grid + x0] + fx * c[(y0 + 1) * grid + x0 + 1];
      f[i * w + j] = (1 - fy) * top + fy * bottom;
    }
  }
  return f;
}

/**
 * GIN in place (sec. III-A); with probability `ipaProb` IPA instead (sec. III-B): x~ = b x'_1 + (1 - b) x'_2 with two
 * independent GIN views and a random smooth mask b in [0, 1], a spatially varying intensity map. A constant slice, or a
 * degenerate (constant) view, leaves the slice as it is.
 */
export function ginSlice(img: Float32Array, h: number, w: number, o: GinOptions, rng: Rng): void {
  const { mean, std } = meanStd(img);
  if (!(std > 0)) return;
  const u = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) u[i] = (img[i] - mean) / std;
  const ipa = o.ipaProb > 0 && rng.next() < o.ipaProb;
  const v1 = ginView(u, h, w, mean, std, o, rng);
  if (!ipa) {
    if (v1) img.set(v1);
    return;
  }
  const v2 = ginView(u, h, w, mean, std, o, rng);
  const b = smoothRandomField(h, w, o.ipaGrid, 0, 1, rng);
  if (!v1 || !v2) {
    if (v1 ?? v2) img.set((v1 ?? v2)!);
    return;
  }
  const mixed = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) mixed[i] = b[i] * v1[i] + (1 - b[i]) * v2[i];
  matchMoments(mixed, img, mean, std);
}

/**
 * A multiplicative bias field in place: x' = lo + (x - lo) exp(s b), lo the slice minimum (the signal floor),
 * s ~ U(0, strengthMax), b a smooth random field in [-1, 1]; then rescaled to the slice's mean and std, as the loader's
 * normalisation would rescale a biased scan.
 */
export function biasFieldSlice(img: Float32Array, h: number, w: number, o: BiasFieldAugmentOptions, rng: Rng): void {
  const { mean, std } = meanStd(img);
  if (!(std > 0)) return;
  let lo = Infinity;
  for (let i = 0; i < img.length; i++) lo = Math.min(lo, img[i]);
  const s = rng.uniform(0, o.strengthMax);
  const b = smoothRandomField(h, w, o.grid, -1, 1, rng);
  const out = new Float32Array(img.length);
  for (let i = 0; i < img.length; i++) out[i] = lo + (img[i] - lo) * Math.exp(s * b[i]);
  matchMoments(out, img, mean, std);
}
