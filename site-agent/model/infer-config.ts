/**
 * A site that joins a federation learns the architecture from the global model it receives: the U-Net's
 * stable parameter names and shapes determine its config, so sites need no separate model file.
 */
import type { WeightSet } from '../../protocol/named-tensor.ts';
import { ModelError } from './model-error.ts';
import { parseUNetConfig, type UNetConfig } from './unet-config.ts';

export function inferUNetConfig(ws: WeightSet): UNetConfig {
  const byName = new Map(ws.map((t) => [t.name, t]));
  const first = byName.get('enc1.conv1.w');
  const head = byName.get('head.w');
  if (!first || first.shape.length !== 4 || !head || head.shape.length !== 4) {
    throw new ModelError('WEIGHT_MISMATCH', 'the global model is not a fedsfda U-Net (no enc1.conv1.w / head.w of rank 4)');
  }
  let depth = 0;
  while (byName.has(`enc${depth + 1}.conv1.w`)) depth++;
  return parseUNetConfig({
    inChannels: first.shape[2],
    numClasses: head.shape[3],
    baseChannels: first.shape[3],
    depth,
  });
}
