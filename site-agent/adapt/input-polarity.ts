/**
 * Label-free check of the target's intensity polarity, run before any adaptation method.
 *
 * Why: tissue contrast polarity differs between imaging sequences (T1 vs T2 MR, MR vs CT). After per-case z-scoring an
 * inverted image is close to the negated source image, and a negated input is the one change that BN re-estimation
 * (AdaBN), BN-affine updates (TENT, OSUDA) and a first-layer alignment started from the source weights (GMM+SWD) do not
 * reach by gradient steps: the first layer's weights would have to cross zero, where its output carries no
 * information. On real anatomy a label-free alignment started from the wrong polarity settles in a class-swapped
 * solution whose class proportions and marginal latent SWD look as good as the right one's (site-agent/adapt/README.md).
 *
 * How: every candidate polarity p is applied to the source model (p = -1 negates the first convolution, which has no
 * bias and a BN right after it, so it is exactly the source network on the negated image), BN statistics are
 * re-estimated on the target (AdaBN), and the polarity whose predictions on the target have the lowest mean entropy is
 * kept. Entropy as a label-free proxy of error is TENT's premise (Wang et al., "Tent: Fully test-time adaptation by
 * entropy minimization", ICLR 2021, sec. 3 and Fig. 1: lower entropy goes with lower error under shift). No target
 * label and no source image is used; the chosen polarity is reported.
 */
import { FIRST_CONV } from '../../protocol/contracts/index.ts';
import * as tf from '@tensorflow/tfjs-core';
import type { UNet } from '../model/index.ts';
import { adaptAdaBN } from './adabn.ts';
import { AdaptError } from './adapt-error.ts';
import { epochBatches, imageBatch, meanEntropy } from './batching.ts';
import type { UnlabeledSlices } from './unlabeled-slices.ts';
import { validateUnlabeled } from './unlabeled-slices.ts';

/** The first convolution, whose sign is the input polarity. */
/** The first convolution's weight name: one home, the tensor-name contract. */
export { FIRST_CONV };

export interface PolarityOptions {
  /**
   * Candidate input polarities, each 1 (as is) or -1 (negated). With more than one, `adapt()` keeps the candidate whose
   * AdaBN-adapted source model has the lowest mean target prediction entropy and then runs the method from it.
   * Default [1] (no check).
   */
  readonly inputPolarities?: readonly number[];
}

export interface PolarityChoice {
  readonly polarity: 1 | -1;
  /** Mean target prediction entropy (nats) per candidate, in the order given. */
  readonly entropies: number[];
}

/** Validates a list of input polarities (non-empty, each 1 or -1, no repeats). */
export function checkPolarities(p: readonly number[]): readonly (1 | -1)[] {
  if (!Array.isArray(p) || p.length === 0 || p.some((v) => v !== 1 && v !== -1) || new Set(p).size !== p.length) {
    throw new AdaptError('BAD_OPTION', `inputPolarities must be a non-empty list of distinct 1 and -1, got ${JSON.stringify(p)}`);
  }
  return p as (1 | -1)[];
}

/** Negates the first convolution for polarity -1 (the network then computes on the negated input); 1 is a no-op. */
export function applyInputPolarity(unet: UNet, polarity: 1 | -1): void {
  if (polarity === 1) return;
  const w = unet.trainable.get(FIRST_CONV);
  if (w === undefined) throw new AdaptError('BAD_OPTION', `input polarity needs the first convolution '${FIRST_CONV}', which the model does not have`);
  tf.tidy(() => w.assign(tf.neg(w)));
}

/** Mean over target pixels of the prediction entropy, inference mode (running BN statistics). */
export function targetEntropy(unet: UNet, target: UnlabeledSlices, batchSize = 8): number {
  let sum = 0;
  for (const idx of epochBatches(target.n, batchSize, null)) {
    const e = tf.tidy(() => meanEntropy(unet.forward(imageBatch(target, idx), { bn: 'running', collectStats: false }).logits));
    sum += e.dataSync()[0] * idx.length;
    e.dispose();
  }
  return sum / target.n;
}

/**
 * Picks the polarity (see the file comment) and leaves `unet` as it was given, with that polarity applied and its
 * BN statistics untouched (the adaptation method that follows sets them).
 * @example
 * const { polarity } = chooseInputPolarity(unet, toUnlabeled(target), [1, -1]);
 */
export function chooseInputPolarity(unet: UNet, target: UnlabeledSlices, candidates: readonly number[], batchSize = 8): PolarityChoice {
  validateUnlabeled(target);
  const polarities = checkPolarities(candidates);
  const initial = unet.getWeights();
  const entropies: number[] = [];
  for (const p of polarities) {
    unet.setWeights(initial);
    applyInputPolarity(unet, p);
    adaptAdaBN(unet, target, { batchSize });
    entropies.push(targetEntropy(unet, target, batchSize));
  }
  let best = 0;
  for (let i = 1; i < entropies.length; i++) if (entropies[i] < entropies[best]) best = i;
  unet.setWeights(initial);
  applyInputPolarity(unet, polarities[best]);
  return { polarity: polarities[best], entropies };
}
