/** Build a Strategy from a JSON spec (config files, CLI). Validated with zod; unknown names are a typed error. */
import { z } from 'zod';
import { FedAvg } from './fedavg.ts';
import { FedProx } from './fedprox.ts';
import { FedBN } from './fedbn.ts';
import { FedOpt } from './fed-opt.ts';
import type { Strategy } from './strategy.ts';

export const STRATEGY_NAMES = ['fedavg', 'fedprox', 'fedbn', 'fedadam', 'fedyogi', 'fedadagrad'] as const;
export type StrategyName = (typeof STRATEGY_NAMES)[number];

export const strategySpecSchema = z
  .object({
    name: z.enum(STRATEGY_NAMES).default('fedavg'),
    localEpochs: z.number().int().min(0).optional(),
    lr: z.number().positive().optional(),
    fractionFit: z.number().min(0).max(1).optional(),
    fractionEvaluate: z.number().min(0).max(1).optional(),
    minFitResults: z.number().int().min(1).optional(),
    minEvaluateResults: z.number().int().min(1).optional(),
    /** Evaluate the initial model before round 1 (recorded as round 0). */
    evaluateInitialModel: z.boolean().optional(),
    seed: z.number().int().optional(),
    fitExtras: z.record(z.string(), z.union([z.number(), z.string(), z.boolean()])).optional(),
    /** FedProx */
    proximalMu: z.number().min(0).optional(),
    /** FedAdam / FedYogi / FedAdagrad (Reddi et al. 2021) */
    eta: z.number().positive().optional(),
    beta1: z.number().min(0).max(1).optional(),
    beta2: z.number().min(0).max(1).optional(),
    tau: z.number().positive().optional(),
  })
  .strict();
export type StrategySpec = z.input<typeof strategySpecSchema>;

export function createStrategy(spec: StrategySpec = {}): Strategy {
  const s = strategySpecSchema.parse(spec);
  const { name, proximalMu, eta, beta1, beta2, tau, ...common } = s;
  const clean = <T extends object>(o: T): T => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
  switch (name) {
    case 'fedavg':
      return new FedAvg(clean(common));
    case 'fedprox':
      return new FedProx({ ...clean(common), proximalMu: proximalMu ?? 0.01 });
    case 'fedbn':
      return new FedBN(clean(common));
    case 'fedadam':
    case 'fedyogi':
    case 'fedadagrad':
      return new FedOpt({ ...clean(common), ...clean({ eta, beta1, beta2, tau }), optimizer: name === 'fedadam' ? 'adam' : name === 'fedyogi' ? 'yogi' : 'adagrad' });
    default: {
      const never: never = name;
      throw new Error(`unknown strategy ${String(never)}`);
    }
  }
}
