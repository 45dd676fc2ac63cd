/**
 * The U-Net family a compiled plan can run: conv3x3-BN-ReLU x2 per level, 2x2 max-pool, nearest or 2x2
 * stride-2 transposed-conv upsampling, skip concatenation, 1x1 head. The parameter names are the tfjs model's
 * own (the model stays the source of truth: weights are copied in and out by name).
 */
import { EngineError } from '../errors.ts';

export interface ConvUnitNames {
  /** BN layer key (batch moments are reported under it), e.g. `enc1.bn1`. */
  readonly layer: string;
  readonly w: string;
  readonly gamma: string;
  readonly beta: string;
  /** Running statistics (absent in the engine's reference network). */
  readonly mean?: string;
  readonly var?: string;
}

export interface UNetFamily {
  readonly inChannels: number;
  readonly numClasses: number;
  readonly baseChannels: number;
  /** Number of 2x2 poolings. */
  readonly depth: number;
  readonly upsample: 'nearest' | 'transpose';
  /** Channel order of the decoder's concatenation. */
  readonly concat: 'up-skip' | 'skip-up';
  /** Names of conv unit i (1 or 2) of a block: `enc<l>`, `bottleneck`, `dec<l>`. */
  unit(block: string, i: 1 | 2): ConvUnitNames;
  /** Transposed conv of decoder level l (upsample 'transpose'). */
  up(level: number): { readonly w: string; readonly b: string };
  readonly head: { readonly w: string; readonly b: string };
}

export interface FamilyShape {
  readonly inChannels: number;
  readonly numClasses: number;
  readonly baseChannels: number;
  readonly depth: number;
}

function check(c: FamilyShape): void {
  for (const [k, v] of Object.entries(pick(c))) {
    if (!Number.isInteger(v) || v < 1) throw new EngineError('BAD_ARGUMENT', `U-Net family: ${k} must be a positive integer, got ${String(v)}`);
  }
}

/** site-agent/model's U-Net (unet-params.ts names): BN layers `<block>.bn<i>`, transposed-conv upsampling, concat [skip, up]. */
export function productUNetFamily(c: FamilyShape): UNetFamily {
  check(c);
  return {
    ...pick(c),
    upsample: 'transpose',
    concat: 'skip-up',
    unit: (block, i) => ({
      layer: `${block}.bn${i}`,
      w: `${block}.conv${i}.w`,
      gamma: `${block}.bn${i}.gamma`,
      beta: `${block}.bn${i}.beta`,
      mean: `${block}.bn${i}.mean`,
      var: `${block}.bn${i}.var`,
    }),
    up: (l) => ({ w: `up${l}.w`, b: `up${l}.b` }),
    head: { w: 'head.w', b: 'head.b' },
  };
}

/** The engine's reference network (bench/reference-unet.ts): BN parameters `<block>.conv<i>.gamma`, no running statistics. */
export function referenceUNetFamily(c: FamilyShape & { upsample?: 'nearest' | 'transpose' }): UNetFamily {
  check(pick(c));
  return {
    ...pick(c),
    upsample: c.upsample ?? 'nearest',
    concat: 'up-skip',
    unit: (block, i) => ({ layer: `${block}.conv${i}`, w: `${block}.conv${i}.w`, gamma: `${block}.conv${i}.gamma`, beta: `${block}.conv${i}.beta` }),
    up: (l) => ({ w: `up${l}.w`, b: `up${l}.b` }),
    head: { w: 'head.w', b: 'head.b' },
  };
}

function pick(c: FamilyShape): FamilyShape {
  return { inChannels: c.inChannels, numClasses: c.numClasses, baseChannels: c.baseChannels, depth: c.depth };
}

/** Channels at level l (1-based); level depth + 1 is the bottleneck. */
export function levelChannels(f: FamilyShape, l: number): number {
  return f.baseChannels * 2 ** (l - 1);
}
