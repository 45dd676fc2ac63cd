import * as tf from '@tensorflow/tfjs-core';
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
} from '../../protocol/contracts/index.ts';
import { sizeOfShape, type NamedTensor, type WeightSet } from '../../protocol/index.ts';
import { batchNormTrain } from '../engine/kernels/index.ts';
import { BN_EPSILON, batchNormApply, channelMoments } from './batch-norm.ts';
import { groupNormApply, groupNormGroups } from './group-norm.ts';
import { ModelError } from './model-error.ts';
import { channelsAt, normalizationOf, parseUNetConfig, type UNetConfig } from './unet-config.ts';
import { buildLayout, initialValues, type ParameterKind, type ParamSpec } from './unet-params.ts';

/** Per-BN-layer moments of the layer's input over (N, H, W): the biased (population) variance. */
export interface BatchNormStats {
  readonly mean: tf.Tensor1D;
  readonly variance: tf.Tensor1D;
}

export interface ForwardOptions {
  /**
   * 'running': normalise with running statistics (inference). 'batch': with this batch's moments (training, TENT).
   * The GroupNorm U-Net normalises every example by its own moments in both modes (there is nothing to choose).
   */
  readonly bn: 'running' | 'batch';
  /**
   * Whether to return the per-layer batch moments. Default true. In 'running' mode they cost one extra
   * reduction per BN layer (OSUDA needs them); predict() turns them off.
   */
  readonly collectStats?: boolean;
}

export interface ForwardResult {
  /** [N, H, W, numClasses], pre-softmax. */
  readonly logits: tf.Tensor4D;
  /** [N, H, W, baseChannels]: the feature map right before the 1x1 classifier. */
  readonly latent: tf.Tensor4D;
  /** Keyed by BN layer prefix (e.g. `enc1.bn1`); empty when collectStats is false, and for the GroupNorm U-Net. */
  readonly batchStats: Map<string, BatchNormStats>;
}

export interface SetWeightsOptions {
  /** Allow a subset of the parameters (e.g. FedBN: everything except BN). Unknown names are still refused. */
  readonly partial?: boolean;
}

/** A functional 2D U-Net whose parameters live in flat maps keyed by stable names. */
export interface UNet {
  readonly config: UNetConfig;
  /** Conv weights, up-conv weights/biases, BN gamma/beta, head weight/bias. */
  readonly trainable: Map<string, tf.Variable>;
  /** BN running mean/var (`<layer>.mean`, `<layer>.var`), not trainable. */
  readonly bnStats: Map<string, tf.Variable>;
  /** BN layer prefixes in forward order, e.g. `enc1.bn1` (none in the GroupNorm U-Net). */
  readonly bnLayers: readonly string[];
  /** Group-norm layer prefixes in forward order, e.g. `enc1.gn1` (GroupNorm U-Net only). */
  readonly gnLayers: readonly string[];
  /** All parameter names in the fixed wire order (trainable and BN statistics interleaved by layer). */
  readonly paramNames: readonly string[];
  /** Number of trainable scalars (BN running statistics excluded). */
  readonly numParams: number;
  forward(x: tf.Tensor4D, opts: ForwardOptions): ForwardResult;
  classify(latent: tf.Tensor): tf.Tensor;
  updateRunningStats(batchStats: Map<string, BatchNormStats>, momentum: number): void;
  getWeights(): WeightSet;
  setWeights(ws: WeightSet, opts?: SetWeightsOptions): void;
  parameterKind(name: string): ParameterKind;
  dispose(): void;
}

/** tfjs keeps a global registry of variable names; a per-model prefix lets many models coexist. */
let modelCounter = 0;

/**
 * Builds a U-Net (Ronneberger et al., MICCAI 2015) with BN (or, with `normalization: 'group'`, group norm) after
 * every 3x3 conv, seeded He initialisation.
 * @example
 * const unet = createUNet({ inChannels: 1, numClasses: 4, baseChannels: 16, depth: 2 }, 42);
 * const { logits } = unet.forward(x, { bn: 'running' });
 */
export function createUNet(rawConfig: UNetConfig, seed: number): UNet {
  const config = parseUNetConfig(rawConfig);
  if (!Number.isInteger(seed)) throw new ModelError('INVALID_CONFIG', `seed must be an integer, got ${seed}`);
  return new FunctionalUNet(config, seed);
}

class FunctionalUNet implements UNet {
  readonly config: UNetConfig;
  readonly trainable = new Map<string, tf.Variable>();
  readonly bnStats = new Map<string, tf.Variable>();
  readonly bnLayers: readonly string[];
  readonly gnLayers: readonly string[];
  readonly paramNames: readonly string[];
  readonly numParams: number;
  private readonly specs = new Map<string, ParamSpec>();
  private disposed = false;

  constructor(config: UNetConfig, seed: number) {
    this.config = config;
    const layout = buildLayout(config);
    this.bnLayers = layout.bnLayers;
    this.gnLayers = layout.gnLayers;
    this.paramNames = layout.specs.map((s) => s.name);
    const values = initialValues(layout.specs, seed);
    const prefix = `fedsfda_unet${++modelCounter}/`;
    let numParams = 0;
    layout.specs.forEach((s, i) => {
      this.specs.set(s.name, s);
      const isStat = s.kind === 'bn-stat';
      // tidy disposes the initial tensor; the variable keeps the data alive by reference count.
      const v = tf.tidy(() => tf.variable(tf.tensor(values[i], [...s.shape], 'float32'), !isStat, prefix + s.name, 'float32'));
      if (isStat) this.bnStats.set(s.name, v);
      else {
        this.trainable.set(s.name, v);
        numParams += values[i].length;
      }
    });
    this.numParams = numParams;
  }

  forward(x: tf.Tensor4D, opts: ForwardOptions): ForwardResult {
    this.assertLive();
    this.checkInput(x);
    if (opts.bn !== 'running' && opts.bn !== 'batch') {
      throw new ModelError('INVALID_INPUT', `forward: opts.bn must be 'running' or 'batch', got ${String(opts.bn)}`);
    }
    const collect = opts.collectStats ?? true;
    const group = normalizationOf(this.config) === 'group';
    const out = tf.tidy(() => {
      const stats: tf.Tensor1D[] = [];
      const statNames: string[] = [];
      const block = (h: tf.Tensor4D, prefix: string): tf.Tensor4D => {
        for (const i of [1, 2]) {
          h = tf.conv2d(h, this.p(convWeightName(prefix, i)) as tf.Tensor4D, 1, 'same');
          h = group ? this.groupNorm(h, groupNormLayerName(prefix, i)) : this.batchNorm(h, batchNormLayerName(prefix, i), opts.bn, collect, stats, statNames);
          h = tf.relu(h);
        }
        return h;
      };
      const skips: tf.Tensor4D[] = [];
      let h: tf.Tensor4D = x;
      for (let l = 1; l <= this.config.depth; l++) {
        h = block(h, encoderBlock(l));
        skips.push(h);
        h = tf.maxPool(h, 2, 2, 'valid');
      }
      h = block(h, BOTTLENECK_BLOCK);
      for (let l = this.config.depth; l >= 1; l--) {
        const skip = skips[l - 1];
        const [n, hh, ww, c] = skip.shape;
        const up = tf.conv2dTranspose(h, this.p(upConvWeightName(l)) as tf.Tensor4D, [n, hh, ww, c], 2, 'valid');
        h = tf.add(up, this.p(upConvBiasName(l)));
        h = block(tf.concat([skip, h], 3), decoderBlock(l));
      }
      const logits = this.classify(h) as tf.Tensor4D;
      return { logits, latent: h, stats, statNames };
    });
    // tidy cannot carry a Map (or plain strings) through, so the names ride along in an array and the Map is built here.
    const batchStats = new Map<string, BatchNormStats>();
    for (let i = 0; i < out.statNames.length; i++) {
      batchStats.set(out.statNames[i], { mean: out.stats[2 * i], variance: out.stats[2 * i + 1] });
    }
    return { logits: out.logits, latent: out.latent, batchStats };
  }

  /** One group-norm layer (groups by groupNormGroups): each example normalised by its own group moments. */
  private groupNorm(x: tf.Tensor4D, layer: string): tf.Tensor4D {
    const gamma = this.p(batchNormTensorName(layer, 'gamma')) as tf.Tensor1D;
    const beta = this.p(batchNormTensorName(layer, 'beta')) as tf.Tensor1D;
    return groupNormApply(x, gamma, beta, groupNormGroups(x.shape[3]));
  }

  /** One BN layer in the requested mode; records the layer input's batch moments when asked. */
  private batchNorm(
    x: tf.Tensor4D,
    layer: string,
    mode: 'running' | 'batch',
    collect: boolean,
    stats: tf.Tensor1D[],
    statNames: string[],
  ): tf.Tensor4D {
    const gamma = this.p(batchNormTensorName(layer, 'gamma')) as tf.Tensor1D;
    const beta = this.p(batchNormTensorName(layer, 'beta')) as tf.Tensor1D;
    if (mode === 'batch') {
      // One fused op with its own backward pass (Ioffe & Szegedy 2015, Alg. 1 and section 3): about half the
      // training step of the op-by-op form on the native backend; the gradient is the same.
      const r = batchNormTrain(x, gamma, beta, BN_EPSILON);
      if (collect) {
        stats.push(r.mean, r.variance);
        statNames.push(layer);
      }
      return r.y as tf.Tensor4D;
    }
    if (collect) {
      const m = channelMoments(x);
      stats.push(m.mean, m.variance);
      statNames.push(layer);
    }
    return batchNormApply(x, this.s(batchNormTensorName(layer, 'mean')), this.s(batchNormTensorName(layer, 'var')), gamma, beta) as tf.Tensor4D;
  }

  classify(latent: tf.Tensor): tf.Tensor {
    this.assertLive();
    const c = channelsAt(this.config, 1);
    const k = this.config.numClasses;
    if (latent.rank < 1 || latent.shape[latent.rank - 1] !== c) {
      throw new ModelError('INVALID_INPUT', `classify: expected latent features [..., ${c}], got [${latent.shape.join(', ')}]`);
    }
    return tf.tidy(() => {
      const flat = tf.reshape(latent, [-1, c]);
      const w = tf.reshape(this.p(HEAD_WEIGHT), [c, k]);
      const out = tf.add(tf.matMul(flat, w), this.p(HEAD_BIAS));
      return tf.reshape(out, [...latent.shape.slice(0, -1), k]);
    });
  }

  /**
   * running <- (1 - momentum) * running + momentum * batch, for mean and variance (PyTorch's momentum convention,
   * default 0.1 there). The batch variance is the biased (population) one that the forward pass normalised with;
   * unlike PyTorch no n/(n-1) correction is applied (as in Keras) — negligible for the N*H*W >= 512 values per channel here.
   * Layers missing from batchStats are left unchanged.
   */
  updateRunningStats(batchStats: Map<string, BatchNormStats>, momentum: number): void {
    this.assertLive();
    if (!(momentum >= 0 && momentum <= 1)) {
      throw new ModelError('INVALID_INPUT', `updateRunningStats: momentum must be in [0, 1], got ${momentum}`);
    }
    for (const [layer, st] of batchStats) {
      const mean = this.bnStats.get(batchNormTensorName(layer, 'mean'));
      const variance = this.bnStats.get(batchNormTensorName(layer, 'var'));
      if (mean === undefined || variance === undefined) {
        throw new ModelError('UNKNOWN_PARAMETER', `updateRunningStats: '${layer}' is not a BN layer of this model`);
      }
      for (const [run, batch, what] of [
        [mean, st.mean, 'mean'],
        [variance, st.variance, 'variance'],
      ] as const) {
        if (!tf.util.arraysEqual(run.shape, batch.shape)) {
          throw new ModelError(
            'WEIGHT_MISMATCH',
            `updateRunningStats: ${layer} batch ${what} has shape [${batch.shape.join(', ')}], expected [${run.shape.join(', ')}]`,
          );
        }
      }
      tf.tidy(() => {
        mean.assign(tf.add(tf.mul(mean, 1 - momentum), tf.mul(st.mean, momentum)));
        variance.assign(tf.add(tf.mul(variance, 1 - momentum), tf.mul(st.variance, momentum)));
      });
    }
  }

  getWeights(): WeightSet {
    this.assertLive();
    return this.paramNames.map((name) => {
      const v = this.variable(name);
      return { name, shape: [...v.shape], data: new Float32Array(v.dataSync() as Float32Array) };
    });
  }

  /** Validates every entry first (names, shapes, lengths, finiteness), then assigns: all or nothing. */
  setWeights(ws: WeightSet, opts: SetWeightsOptions = {}): void {
    this.assertLive();
    if (!Array.isArray(ws)) throw new ModelError('WEIGHT_MISMATCH', 'setWeights: expected an array of named tensors');
    const seen = new Set<string>();
    for (const t of ws) {
      const spec = this.specs.get(t.name);
      if (spec === undefined) {
        throw new ModelError('UNKNOWN_PARAMETER', `setWeights: '${String(t.name)}' is not a parameter of this model`);
      }
      if (seen.has(t.name)) throw new ModelError('WEIGHT_MISMATCH', `setWeights: '${t.name}' appears twice`);
      seen.add(t.name);
      checkTensor(t, spec);
    }
    if (opts.partial !== true) {
      const missing = this.paramNames.find((n) => !seen.has(n));
      if (missing !== undefined) throw new ModelError('WEIGHT_MISMATCH', `setWeights: '${missing}' is missing`);
    }
    for (const t of ws) {
      const v = this.variable(t.name);
      // Copy: some backends (cpu) adopt a typed array by reference, and the caller may reuse its buffers.
      tf.tidy(() => v.assign(tf.tensor(new Float32Array(t.data), v.shape, 'float32')));
    }
  }

  parameterKind(name: string): ParameterKind {
    const spec = this.specs.get(name);
    if (spec === undefined) throw new ModelError('UNKNOWN_PARAMETER', `parameterKind: '${name}' is not a parameter of this model`);
    return spec.kind;
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    for (const v of this.trainable.values()) v.dispose();
    for (const v of this.bnStats.values()) v.dispose();
  }

  private checkInput(x: tf.Tensor4D): void {
    if (!isTensorLike(x) || x.rank !== 4) {
      throw new ModelError('INVALID_INPUT', `forward: expected a rank-4 NHWC tensor, got ${describe(x)}`);
    }
    if (x.dtype !== 'float32') throw new ModelError('INVALID_INPUT', `forward: expected float32 input, got ${x.dtype}`);
    const [, h, w, c] = x.shape;
    if (c !== this.config.inChannels) {
      throw new ModelError('INVALID_INPUT', `forward: input has ${c} channels, the model expects ${this.config.inChannels}`);
    }
    const f = 2 ** this.config.depth;
    if (h % f !== 0 || w % f !== 0) {
      throw new ModelError('INVALID_INPUT', `forward: input ${h}x${w} is not divisible by 2^depth = ${f}`);
    }
    const size = this.config.inputSize;
    if (size !== undefined && (h !== size[0] || w !== size[1])) {
      throw new ModelError('INVALID_INPUT', `forward: input is ${h}x${w}, the model is configured for ${size[0]}x${size[1]}`);
    }
  }

  private variable(name: string): tf.Variable {
    const v = this.trainable.get(name) ?? this.bnStats.get(name);
    if (v === undefined) throw new ModelError('UNKNOWN_PARAMETER', `'${name}' is not a parameter of this model`);
    return v;
  }

  private p(name: string): tf.Variable {
    const v = this.trainable.get(name);
    if (v === undefined) throw new ModelError('UNKNOWN_PARAMETER', `'${name}' is not a trainable parameter`);
    return v;
  }

  private s(name: string): tf.Tensor1D {
    const v = this.bnStats.get(name);
    if (v === undefined) throw new ModelError('UNKNOWN_PARAMETER', `'${name}' is not a BN statistic`);
    return v as tf.Tensor1D;
  }

  private assertLive(): void {
    if (this.disposed) throw new ModelError('DISPOSED', 'this U-Net has been disposed');
  }
}

function checkTensor(t: NamedTensor, spec: ParamSpec): void {
  if (!Array.isArray(t.shape) || !tf.util.arraysEqual(t.shape as number[], spec.shape as number[])) {
    throw new ModelError(
      'WEIGHT_MISMATCH',
      `'${t.name}' has shape [${Array.isArray(t.shape) ? t.shape.join(', ') : String(t.shape)}], expected [${spec.shape.join(', ')}]`,
    );
  }
  if (!(t.data instanceof Float32Array) || t.data.length !== sizeOfShape(spec.shape)) {
    throw new ModelError(
      'WEIGHT_MISMATCH',
      `'${t.name}' data must be a Float32Array of ${sizeOfShape(spec.shape)} values, got ${describe(t.data)}`,
    );
  }
  for (let i = 0; i < t.data.length; i++) {
    if (!Number.isFinite(t.data[i])) {
      throw new ModelError('NON_FINITE_WEIGHT', `'${t.name}' holds a non-finite value (${t.data[i]}) at index ${i}`);
    }
  }
  if (spec.kind === 'bn-stat' && t.name.endsWith('.var')) {
    for (let i = 0; i < t.data.length; i++) {
      if (t.data[i] < 0) throw new ModelError('WEIGHT_MISMATCH', `'${t.name}' holds a negative variance at index ${i}`);
    }
  }
}

/**
 * Duck-typed: under plain Node two copies of tfjs-core can be loaded (the CommonJS bundle and the ESM build the
 * gradient registration uses), sharing one engine but not one Tensor class, so `instanceof` would refuse valid input.
 */
function isTensorLike(v: unknown): v is tf.Tensor {
  return typeof v === 'object' && v !== null && Array.isArray((v as tf.Tensor).shape) && typeof (v as tf.Tensor).dtype === 'string';
}

function describe(v: unknown): string {
  if (isTensorLike(v)) return `a rank-${v.rank} ${v.dtype} tensor [${v.shape.join(', ')}]`;
  if (ArrayBuffer.isView(v)) return `${v.constructor.name}(${(v as Float32Array).length})`;
  return typeof v;
}
