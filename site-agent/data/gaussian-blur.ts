/**
 * Separable Gaussian blur of a row-major h x w float image, in place; edges are clamped (replicate padding).
 * Kernel w_i = exp(-i² / 2σ²) / Σ_j exp(-j² / 2σ²), |i| <= max(1, ceil(3σ)), rows then columns; σ in pixels, σ <= 0
 * leaves the image as it is. Used by the phantoms' scanner shifts (point-spread function, anti-aliasing) and by the
 * input adapter's spatial pre-filter (site-agent/adapt/spatial-prefilter.ts).
 */
export function gaussianBlur2d(img: Float32Array, h: number, w: number, sigma: number): void {
  if (!(sigma > 0)) return;
  const radius = Math.max(1, Math.ceil(3 * sigma));
  const kernel = new Float32Array(2 * radius + 1);
  let sum = 0;
  for (let i = -radius; i <= radius; i++) {
    const v = Math.exp(-(i * i) / (2 * sigma * sigma));
    kernel[i + radius] = v;
    sum += v;
  }
  for (let i = 0; i < kernel.length; i++) kernel[i] /= sum;
  const line = new Float32Array(Math.max(h, w));
  // Rows.
  for (let y = 0; y < h; y++) {
    const o = y * w;
    for (let x = 0; x < w; x++) line[x] = img[o + x];
    for (let x = 0; x < w; x++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) {
        let xx = x + k;
        if (xx < 0) xx = 0;
        else if (xx >= w) xx = w - 1;
        acc += kernel[k + radius] * line[xx];
      }
      img[o + x] = acc;
    }
  }
  // Columns.
  for (let x = 0; x < w; x++) {
    for (let y = 0; y < h; y++) line[y] = img[y * w + x];
    for (let y = 0; y < h; y++) {
      let acc = 0;
      for (let k = -radius; k <= radius; k++) {
        let yy = y + k;
        if (yy < 0) yy = 0;
        else if (yy >= h) yy = h - 1;
        acc += kernel[k + radius] * line[yy];
      }
      img[y * w + x] = acc;
    }
  }
}
