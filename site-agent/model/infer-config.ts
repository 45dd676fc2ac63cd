/**
 * A site that joins a federation learns the architecture from the global model it receives: the U-Net's
 * stable parameter names and shapes determine its config, so sites need no separate model file.
 */
import { FIRST_CONV, HEAD_WEIGHT, batchNormTensorName, convWeightName, encoderBlock, groupNormLayerName } from '../../protocol/contracts/index.ts';
import type { WeightSet } from '../../protocol/index.ts';
import { ModelError } from './model-error.ts';
import { parseUNetConfig, type UNetConfig } from './unet-config.ts';

export function inferUNetConfig(ws: WeightSet): UNetConfig {
  const byName = new Map(ws.map((t) => [t.name, t]));
  const first = byName.get(FIRST_CONV);
  const head = byName.get(HEAD_WEIGHT);
  if (!first || first.shape.length !== 4 || !head || head.shape.length !== 4) {
    throw new ModelError('WEIGHT_MISMATCH', `the global model is not a fedsfda U-Net (no ${FIRST_CONV} / ${HEAD_WEIGHT} of rank 4)`);
  }
  let depth = 0;
  while (byName.has(convWeightName(encoderBlock(depth + 1), 1))) depth++;
  // The GroupNorm U-Net names its normalisation layers `gn<i>`; its groups follow from the channel counts.
  const group = byName.has(batchNormTensorName(groupNormLayerName(encoderBlock(1), 1), 'gamma'));
  return parseUNetConfig({
    inChannels: first.shape[2],
    numClasses: head.shape[3],
    baseChannels: first.shape[3],
    depth,
    ...(group ? { normalization: 'group' } : {}),
  });
}
