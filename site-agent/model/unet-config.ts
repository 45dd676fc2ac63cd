import { z } from 'zod';
import { describeFirstIssue } from '../../protocol/common/index.ts';
import { ModelError } from './model-error.ts';

/**
 * U-Net shape. `depth` is the number of 2x2 poolings, so inputs must have height and width divisible by 2^depth.
 * Channels double at every level: level i (1-based) has baseChannels * 2^(i-1); the bottleneck has baseChannels * 2^depth.
 */
export const UNetConfigSchema = z
  .object({
    inChannels: z.number().int().min(1).max(64),
    numClasses: z.number().int().min(2).max(255),
    baseChannels: z.number().int().min(1).max(512),
    depth: z.number().int().min(1).max(6),
    /**
     * 'batch' (default): batch norm after every 3x3 conv. 'group': group norm instead (groupNormGroups channels
     * rule, no running statistics), the variant DP-SGD needs because batch norm mixes the examples of a batch.
     */
    normalization: z.enum(['batch', 'group']).optional(),
    /** Optional fixed input size [height, width]; when set, forward() rejects other sizes. */
    inputSize: z.tuple([z.number().int().min(1), z.number().int().min(1)]).optional(),
  })
  .strict()
  .superRefine((c, ctx) => {
    if (c.inputSize !== undefined) {
      const f = 2 ** c.depth;
      if (c.inputSize[0] % f !== 0 || c.inputSize[1] % f !== 0) {
        ctx.addIssue({
          code: 'custom',
          path: ['inputSize'],
          message: `inputSize ${c.inputSize[0]}x${c.inputSize[1]} is not divisible by 2^depth = ${f}`,
        });
      }
    }
  });

export type UNetConfig = z.infer<typeof UNetConfigSchema>;

/** Validates a config, throwing ModelError('INVALID_CONFIG') that names the offending field. */
export function parseUNetConfig(raw: unknown): UNetConfig {
  const r = UNetConfigSchema.safeParse(raw);
  if (!r.success) throw new ModelError('INVALID_CONFIG', `invalid U-Net config at ${describeFirstIssue(r.error)}`);
  return r.data;
}

export type Normalization = NonNullable<UNetConfig['normalization']>;

/** The config's normalisation layer kind ('batch' when unset). */
export function normalizationOf(config: UNetConfig): Normalization {
  return config.normalization ?? 'batch';
}

/** Channels at encoder level `level` (1-based); level depth+1 is the bottleneck. */
export function channelsAt(config: UNetConfig, level: number): number {
  return config.baseChannels * 2 ** (level - 1);
}
