/**
 * The `secureAggregation` settings as written in config files (`fedsfda coordinator --config`, scenario files).
 * Same fields as the coordinator's `secureAggregation` option (secure-fit.ts); validated again there.
 */
import { z } from 'zod';

export const secureAggregationConfigSchema = z
  .object({
    clip: z.number().positive(),
    scaleBits: z.number().int().min(0).max(30).optional(),
    threshold: z.number().int().min(2).optional(),
    degree: z.number().int().min(2).optional(),
    maxExamples: z.number().positive(),
    metrics: z.array(z.string().min(1).max(64)).max(32).optional(),
  })
  .strict();
