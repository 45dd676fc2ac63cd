/**
 * The fit stage of a round as a workflow composed around the strategy (Flower's split:
 * `DefaultWorkflow(fit_workflow=SecAggPlusWorkflow())`). The round runner asks the strategy whom to train
 * (`configureFit`), hands the instructions to a FitWorkflow, and gives what comes back to the strategy
 * (`aggregateFit` with the failures passed in). Two implementations: plain (each site's update travels sealed and
 * chunked; the coordinator sees every update) and secure (SecAgg+: the coordinator sees only the sum, handed to the
 * strategy as one virtual result). A wrapper (differential privacy, compression) is another FitWorkflow that
 * delegates to an inner one.
 */
import type { Logger } from '../../protocol/common/index.ts';
import type { WeightSet } from '../../protocol/index.ts';
import type { SiteRegistry } from '../sites/index.ts';
import type { FitInstruction, FitResult, RoundFailure, Strategy } from '../strategies/index.ts';

/** A global model encoded for the wire, with its content-addressed id. */
export interface EncodedModel {
  readonly id: string;
  readonly bytes: Uint8Array;
}

/** An accepted reply, for progress events and the status page. */
export interface SiteReply {
  readonly stage: 'fit' | 'evaluate';
  readonly siteId: string;
  readonly numExamples: number;
  readonly metrics: Record<string, number>;
}

/** What every exchange of a round shares: where the sites are, how long they may take, how to stop. */
export interface ExchangeContext {
  readonly round: number;
  readonly registry: SiteRegistry;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** Budget of the stage (each request's deadline; SecAgg: each of its stages). */
  readonly stageMs: number;
  /** How long a site that dropped mid-request may take to reconnect and resume (0: fail at once). */
  readonly reconnectGraceMs: number;
  readonly onReply?: (reply: SiteReply) => void;
}

export interface FitInput extends ExchangeContext {
  readonly instructions: readonly FitInstruction[];
  readonly global: WeightSet;
  readonly model: EncodedModel;
  /** The strategy (read only: which tensors it aggregates). */
  readonly strategy: Strategy;
  /** Largest encoded update accepted from one site (bytes). */
  readonly maxUpdateBytes: number;
}

/** What a secure fit stage adds to the round record: whose updates are in the sum, and why it aborted. */
export interface SecureRoundInfo {
  readonly included: string[];
  readonly excluded: string[];
  readonly totalExamples: number;
  readonly error: string | null;
}

export interface FitOutcome {
  readonly results: FitResult[];
  readonly failures: RoundFailure[];
  readonly secure?: SecureRoundInfo;
}

export interface FitWorkflow {
  /** `plain`, `secure`, or a wrapper's name. */
  readonly kind: string;
  fit(input: FitInput): Promise<FitOutcome>;
}
