import { Rng } from '../../protocol/common/index.ts';
import {
  BOTTLENECK_BLOCK,
  HEAD_BIAS,
  HEAD_WEIGHT,
  batchNormLayerName,
  batchNormTensorName,
  convWeightName,
  decoderBlock,
  encoderBlock,
  groupNormLayerName,
  upConvBiasName,
  upConvWeightName,
  type TensorRole,
} from '../../protocol/contracts/index.ts';
import { channelsAt, normalizationOf, type UNetConfig } from './unet-config.ts';

/** What a parameter is, so that FedBN / TENT / OSUDA can select by role: the tensor-name contract's roles. */
export type ParameterKind = TensorRole;

/** How a parameter starts. */
type InitKind = 'he' | 'lecun' | 'zeros' | 'ones';

export interface ParamSpec {
  readonly name: string;
  readonly shape: readonly number[];
  readonly kind: ParameterKind;
  readonly init: InitKind;
  /** Number of inputs feeding one output unit, for the initialisation scale. */
  readonly fanIn: number;
}

/** The full, ordered parameter list of a U-Net, and its normalisation layer prefixes in forward order. */
export interface UNetLayout {
  readonly specs: readonly ParamSpec[];
  /** Batch-norm layers (empty for the GroupNorm U-Net). */
  readonly bnLayers: readonly string[];
  /** Group-norm layers (empty for the batch-norm U-Net). */
  readonly gnLayers: readonly string[];
}

/**
 * Parameter names and shapes, in the fixed order used by getWeights / model.json / the wire.
 * Convolutions before a BN carry no bias (BN's beta subsumes it); the transposed up-convolutions and the head do.
 * Filter layouts are tfjs's: conv [kh, kw, in, out]; transposed conv [kh, kw, out, in].
 */
export function buildLayout(config: UNetConfig): UNetLayout {
  const specs: ParamSpec[] = [];
  const bnLayers: string[] = [];
  const gnLayers: string[] = [];
  const group = normalizationOf(config) === 'group';
  const doubleConv = (prefix: string, cin: number, cout: number): void => {
    for (const [i, inCh] of [
      [1, cin],
      [2, cout],
    ] as const) {
      specs.push({ name: convWeightName(prefix, i), shape: [3, 3, inCh, cout], kind: 'conv', init: 'he', fanIn: 9 * inCh });
      if (group) {
        // Group norm: the same affine parameters as batch norm, no running statistics.
        const gn = groupNormLayerName(prefix, i);
        gnLayers.push(gn);
        specs.push({ name: batchNormTensorName(gn, 'gamma'), shape: [cout], kind: 'bn-affine', init: 'ones', fanIn: 1 });
        specs.push({ name: batchNormTensorName(gn, 'beta'), shape: [cout], kind: 'bn-affine', init: 'zeros', fanIn: 1 });
        continue;
      }
      const bn = batchNormLayerName(prefix, i);
      bnLayers.push(bn);
      specs.push({ name: batchNormTensorName(bn, 'gamma'), shape: [cout], kind: 'bn-affine', init: 'ones', fanIn: 1 });
      specs.push({ name: batchNormTensorName(bn, 'beta'), shape: [cout], kind: 'bn-affine', init: 'zeros', fanIn: 1 });
      specs.push({ name: batchNormTensorName(bn, 'mean'), shape: [cout], kind: 'bn-stat', init: 'zeros', fanIn: 1 });
      specs.push({ name: batchNormTensorName(bn, 'var'), shape: [cout], kind: 'bn-stat', init: 'ones', fanIn: 1 });
    }
  };
  const { depth, inChannels, numClasses } = config;
  for (let l = 1; l <= depth; l++) {
    doubleConv(encoderBlock(l), l === 1 ? inChannels : channelsAt(config, l - 1), channelsAt(config, l));
  }
  doubleConv(BOTTLENECK_BLOCK, channelsAt(config, depth), channelsAt(config, depth + 1));
  for (let l = depth; l >= 1; l--) {
    const cin = channelsAt(config, l + 1);
    const cout = channelsAt(config, l);
    // 2x2 stride-2 transposed conv: every output pixel sees exactly one tap per input channel, so fan-in = cin.
    specs.push({ name: upConvWeightName(l), shape: [2, 2, cout, cin], kind: 'conv', init: 'he', fanIn: cin });
    specs.push({ name: upConvBiasName(l), shape: [cout], kind: 'conv', init: 'zeros', fanIn: 1 });
    doubleConv(decoderBlock(l), 2 * cout, cout);
  }
  const c1 = channelsAt(config, 1);
  // No ReLU follows the classifier, so LeCun (variance 1/fan_in) rather than He scaling.
  specs.push({ name: HEAD_WEIGHT, shape: [1, 1, c1, numClasses], kind: 'head', init: 'lecun', fanIn: c1 });
  specs.push({ name: HEAD_BIAS, shape: [numClasses], kind: 'head', init: 'zeros', fanIn: 1 });
  return { specs, bnLayers, gnLayers };
}

/**
 * Initial values drawn in spec order from one seeded stream, so the same (config, seed) gives the same model.
 * He et al., "Delving Deep into Rectifiers", ICCV 2015, sec. 2.2: w ~ N(0, 2 / fan_in) before a ReLU.
 */
export function initialValues(specs: readonly ParamSpec[], seed: number): Float32Array[] {
  const rng = new Rng(seed);
  return specs.map((s) => {
    let size = 1;
    for (const d of s.shape) size *= d;
    const data = new Float32Array(size);
    switch (s.init) {
      case 'zeros':
        break;
      case 'ones':
        data.fill(1);
        break;
      case 'he':
      case 'lecun': {
        const std = Math.sqrt((s.init === 'he' ? 2 : 1) / s.fanIn);
        for (let i = 0; i < size; i++) data[i] = rng.normal() * std;
        break;
      }
      default: {
        const never: never = s.init;
        throw new Error(`unreachable init ${String(never)}`);
      }
    }
    return data;
  });
}
