/**
 * Mask surfaces as MONAI defines them (monai/metrics/utils.py `get_mask_edges`): edges = mask XOR erosion(mask),
 * with scipy's default structuring element, i.e. face connectivity (4-neighbourhood in 2D, 6 in 3D), and
 * voxels outside the image counted as background (scipy `binary_erosion(border_value=0)`), so a mask touching the
 * image border has a surface there.
 */
export function maskSurface(mask: Uint8Array, dims: readonly number[]): Uint8Array {
  const total = mask.length;
  const out = new Uint8Array(total);
  const strides = dims.map((_, a) => dims.slice(a + 1).reduce((p, c) => p * c, 1));
  const coord = new Array<number>(dims.length).fill(0);
  for (let i = 0; i < total; i++) {
    if (i > 0) {
      // increment the multi-index (last axis fastest)
      for (let a = dims.length - 1; a >= 0; a--) {
        coord[a]++;
        if (coord[a] < dims[a]) break;
        coord[a] = 0;
      }
    }
    if (!mask[i]) continue;
    let interior = true;
    for (let a = 0; a < dims.length && interior; a++) {
      if (coord[a] === 0 || coord[a] === dims[a] - 1) interior = false;
      else if (!mask[i - strides[a]] || !mask[i + strides[a]]) interior = false;
    }
    if (!interior) out[i] = 1;
  }
  return out;
}
