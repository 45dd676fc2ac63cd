/**
 * The U-Net's tensor names and what role each plays, for every part that selects tensors by role without loading
 * the model (the coordinator's FedBN and run artifacts never import tfjs). Names are the keys of everything that
 * crosses the wire (DESIGN.md section 3):
 *   `<block>.conv<i>.w`                 3x3 convolution ([3, 3, in, out]); blocks `enc<l>`, `bottleneck`, `dec<l>`
 *   `<block>.bn<i>.gamma|beta`          batch-norm affine parameters ([C])
 *   `<block>.bn<i>.mean|var`            batch-norm running statistics ([C])
 *   `<block>.gn<i>.gamma|beta`          group-norm affine parameters ([C]) of the GroupNorm U-Net (DP-SGD); no statistics
 *   `up<l>.w`, `up<l>.b`                2x2 transposed convolution and its bias
 *   `head.w`, `head.b`                  the 1x1 classifier ([1, 1, latent, classes]) and its bias
 */

/**
 * What a tensor is, so that FedBN, TENT and OSUDA can select by role. `bn-affine` is the affine part of any
 * normalisation layer (batch norm, or group norm in the GroupNorm U-Net); `bn-stat` exists for batch norm only.
 */
export type TensorRole = 'conv' | 'bn-affine' | 'bn-stat' | 'head';

export const BN_AFFINE_PARTS = ['gamma', 'beta'] as const;
export const BN_STAT_PARTS = ['mean', 'var'] as const;
export type BatchNormPart = (typeof BN_AFFINE_PARTS)[number] | (typeof BN_STAT_PARTS)[number];

export const HEAD_WEIGHT = 'head.w';
export const HEAD_BIAS = 'head.b';

export function convWeightName(block: string, i: number): string {
  return `${block}.conv${i}.w`;
}

/** The batch-norm layer that follows convolution `i` of a block (its tensors share this prefix). */
export function batchNormLayerName(block: string, i: number): string {
  return `${block}.bn${i}`;
}

export function batchNormTensorName(layer: string, part: BatchNormPart): string {
  return `${layer}.${part}`;
}

/**
 * The group-norm layer that follows convolution `i` of a block in the GroupNorm U-Net (the variant for DP-SGD:
 * group norm normalises each example on its own, Wu & He, ECCV 2018). Its tensors are `<layer>.gamma|beta`
 * (batchNormTensorName with an affine part); there are no running statistics.
 */
export function groupNormLayerName(block: string, i: number): string {
  return `${block}.gn${i}`;
}

export function upConvWeightName(level: number): string {
  return `up${level}.w`;
}

export function upConvBiasName(level: number): string {
  return `up${level}.b`;
}

export function encoderBlock(level: number): string {
  return `enc${level}`;
}

export function decoderBlock(level: number): string {
  return `dec${level}`;
}

export const BOTTLENECK_BLOCK = 'bottleneck';

/** The first convolution: the one that sees the input image (input-polarity checks negate it). */
export const FIRST_CONV = convWeightName(encoderBlock(1), 1);

/** A normalisation layer segment: `bn`, `bn1`, `gn1`, ... or any `...norm...` (group/instance norm of other models). */
function isNormSegment(seg: string): boolean {
  return /^[bg]n\d*$/.test(seg) || /norm/i.test(seg);
}

/** The role of a tensor, from its name alone. */
export function tensorRole(name: string): TensorRole {
  const segs = name.split('.');
  if (segs[0] === 'head') return 'head';
  if (segs.some(isNormSegment)) {
    return (BN_STAT_PARTS as readonly string[]).includes(segs[segs.length - 1]) ? 'bn-stat' : 'bn-affine';
  }
  return 'conv';
}

/** Batch-norm affine parameters or running statistics: what FedBN keeps at the site. */
export function isBatchNormTensor(name: string): boolean {
  const role = tensorRole(name);
  return role === 'bn-affine' || role === 'bn-stat';
}

/** Latent channels and classes, read off the classifier's weight shape [1, 1, latent, classes]. */
export function headDimensions(tensors: readonly { readonly name: string; readonly shape: readonly number[] }[]): { latentDim: number; numClasses: number } {
  const head = tensors.find((t) => t.name === HEAD_WEIGHT);
  if (!head || head.shape.length !== 4) throw new RangeError(`the model has no ${HEAD_WEIGHT} of rank 4`);
  return { latentDim: head.shape[2], numClasses: head.shape[3] };
}
