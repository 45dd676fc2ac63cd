/**
 * A named float32 tensor: the unit of everything that crosses the wire (model weights, BN statistics,
 * aggregated statistics). Names are stable strings such as `enc1.conv1.w`, `enc1.bn1.gamma`, `enc1.bn1.mean`.
 */
export interface NamedTensor {
  readonly name: string;
  readonly shape: readonly number[];
  readonly data: Float32Array;
}

/** A model's full state or an update, ordered as the model lists it. */
export type WeightSet = NamedTensor[];

/** Number of elements implied by a shape. */
export function sizeOfShape(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** Deep copy, so that an aggregator or optimizer never aliases a caller's buffers. */
export function cloneWeightSet(ws: WeightSet): WeightSet {
  return ws.map((t) => ({ name: t.name, shape: [...t.shape], data: new Float32Array(t.data) }));
}
