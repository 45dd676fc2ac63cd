/** The coordinator's `--config FILE` (JSON, strict: an unknown key is an error); command-line flags override it. */
import { ConfigError, readConfigFile } from '../../protocol/common/index.ts';
import { z } from 'zod';
import { CoordinatorError } from '../errors/index.ts';
import { DEFAULT_MIN_AGGREGATED_FRACTION } from '../rounds/index.ts';
import { runStatisticsSchema } from '../storage/index.ts';
import { differentialPrivacyConfigSchema, strategySpecSchema } from '../strategies/index.ts';
import { secureAggregationConfigSchema } from './secure-aggregation-schema.ts';

export const coordinatorConfigSchema = z
  .object({
    rounds: z.number().int().min(0).default(3),
    minSites: z.number().int().min(1).default(1),
    host: z.string().default('127.0.0.1'),
    port: z.number().int().min(0).max(65535).default(8080),
    checkpointDir: z.string().optional(),
    strategy: strategySpecSchema.default({ name: 'fedavg' }),
    timeouts: z
      .object({
        handshakeMs: z.number().positive().optional(),
        headersMs: z.number().positive().optional(),
        waitForSitesMs: z.number().positive().optional(),
        fitMs: z.number().positive().optional(),
        evaluateMs: z.number().positive().optional(),
        finishMs: z.number().min(0).optional(),
        reconnectGraceMs: z.number().min(0).optional(),
        releaseAfterRestartMs: z.number().min(0).optional(),
        pingIntervalMs: z.number().int().positive().optional(),
        pingTimeoutMs: z.number().int().positive().optional(),
      })
      .strict()
      .default({}),
    /** Caps on open connections (http/connection-limits.ts) and the per-site byte budget per round (sites/byte-budget.ts). */
    limits: z
      .object({
        maxConnections: z.number().int().min(1).optional(),
        maxUnauthenticatedPerAddress: z.number().int().min(1).optional(),
        maxSiteBytesPerRound: z.number().int().min(1).optional(),
      })
      .strict()
      .default({}),
    /** Secure aggregation (SecAgg+): the coordinator learns only sums. See SECURITY.md. */
    secureAggregation: secureAggregationConfigSchema.optional(),
    /** Client-level differential privacy (DP-FedAvg): clipping, noise, budget. See SECURITY.md. */
    differentialPrivacy: differentialPrivacyConfigSchema.optional(),
    /** Statistics rounds after the last round (with --out): pooled source statistics, non-IID report. */
    statistics: runStatisticsSchema.optional(),
    /** Serve HTTPS/WSS: PEM files of the certificate chain and its private key. */
    tls: z.object({ certFile: z.string().min(1), keyFile: z.string().min(1) }).strict().optional(),
    /** Fraction of rounds that must aggregate for the run to succeed (exit 0); at least one round always. */
    minAggregatedFraction: z.number().min(0).max(1).default(DEFAULT_MIN_AGGREGATED_FRACTION),
  })
  .strict();
export type CoordinatorConfig = z.infer<typeof coordinatorConfigSchema>;

/** Read and validate `--config FILE` (no file: every default). Throws CoordinatorError('bad_options') naming the problem. */
export async function loadCoordinatorConfig(file: string | undefined): Promise<CoordinatorConfig> {
  try {
    return file ? await readConfigFile(coordinatorConfigSchema, file) : coordinatorConfigSchema.parse({});
  } catch (e) {
    if (e instanceof ConfigError) throw new CoordinatorError('bad_options', `--config ${e.message}`);
    throw e;
  }
}
