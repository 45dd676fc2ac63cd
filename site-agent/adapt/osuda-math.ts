/**
 * The closed-form pieces of OSUDA, kept pure so they can be checked by hand.
 *
 * Liu, Xing, Yang, El Fakhri, Woo, "Adapting Off-the-Shelf Source Segmenter for Target Medical Image Segmentation",
 * MICCAI 2021, section 2 (low-order statistics with exponential momentum decay; high-order statistics consistency
 * weighted by transferability); Liu, Xing, El Fakhri, Woo, MedIA 83 (2023) 102641, section 3 (adds the scaling
 * factor to the transferability and memory-consistent self-training).
 */

/**
 * Exponential momentum decay (OSUDA MICCAI 2021, sec. 2.1): η_t = η_0 · exp(-t / T), floored at `etaMin` so that
 * very long runs keep tracking slowly. Running stats then follow μ_t = (1 - η_t) μ_{t-1} + η_t μ_batch.
 */
export function emdMomentum(t: number, eta0: number, decayT: number, etaMin = 0): number {
  return Math.max(etaMin, eta0 * Math.exp(-t / decayT));
}

/**
 * TransNorm transferability (Wang et al., "Transferable Normalization", NeurIPS 2019, sec. 3.2, as used by OSUDA
 * sec. 2.2): d_k = |μ_s,k / sqrt(σ²_s,k + ε) - μ_t,k / sqrt(σ²_t,k + ε)|,
 * α_k = C · (1 + d_k)^-1 / Σ_j (1 + d_j)^-1, so the C weights average 1.
 * With `scale` (OSUDA MedIA 2023 sec. 3.2: the BN scaling factor enters the divergence) d_k is multiplied by |γ_k|.
 */
export function transferabilityWeights(
  meanS: ArrayLike<number>,
  varS: ArrayLike<number>,
  meanT: ArrayLike<number>,
  varT: ArrayLike<number>,
  eps = 1e-5,
  scale?: ArrayLike<number>,
): Float64Array {
  const c = meanS.length;
  const inv = new Float64Array(c);
  let total = 0;
  for (let k = 0; k < c; k++) {
    let d = Math.abs(meanS[k] / Math.sqrt(varS[k] + eps) - meanT[k] / Math.sqrt(varT[k] + eps));
    if (scale) d *= Math.abs(scale[k]);
    inv[k] = 1 / (1 + d);
    total += inv[k];
  }
  const alpha = new Float64Array(c);
  for (let k = 0; k < c; k++) alpha[k] = (c * inv[k]) / total;
  return alpha;
}
