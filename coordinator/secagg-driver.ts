/**
 * Runs the five SecAgg+ stages of one secure-aggregation run over the sites' encrypted sessions (the workflow
 * that wraps a strategy, STYLE.md habit 3). For each stage: send every recipient its instruction, feed each reply
 * that arrives before the stage deadline into `SecAggServerWorkflow.receive` (masked vectors are folded into the
 * running sum as they arrive), then `closeStage()` — sites that did not answer are dropouts. Fewer than t survivors
 * aborts with `SecAggError('below-threshold')`, and nothing partial is revealed (the workflow wipes its sum).
 * No strategy math here: secure-fit.ts and statistics-round.ts turn the sum into results.
 */
import type { Logger } from '../protocol/common/index.ts';
import type { SecAggSetupContext } from '../protocol/messages.ts';
import { SecAggError, isSecAggError } from '../protocol/secagg/errors.ts';
import { SECAGG_STAGES, type SecAggInstruction, type SecAggReply, type SecAggStage } from '../protocol/secagg/messages.ts';
import type { SecAggConfig } from '../protocol/secagg/config.ts';
import type { EnrolledIdentities } from '../protocol/secagg/round-keys.ts';
import { SecAggServerWorkflow, type SecAggResult } from '../protocol/secagg/server-workflow.ts';
import { instructionToWire, replyFromWire } from '../protocol/secagg/wire-json.ts';
import { SiteRequestError } from './site-connection.ts';
import type { SiteRegistry } from './site-registry.ts';
import type { FailureCode } from './strategies/strategy.ts';

/**
 * Test seams for playing a dishonest coordinator and for recording what the coordinator receives. Production code
 * never sets them.
 */
export interface SecAggTestHooks {
  /** Rewrite an instruction just before it is sent to `to` (e.g. swap a peer's public key). */
  tamper?: (to: string, ins: SecAggInstruction) => SecAggInstruction;
  /** Sees every decoded secagg reply the coordinator receives, masked vectors included. */
  onReply?: (from: string, reply: SecAggReply) => void;
}

export interface SecAggDriveInput {
  readonly sessionId: string;
  readonly config: SecAggConfig;
  readonly enrolled: EnrolledIdentities;
  readonly registry: SiteRegistry;
  /** Deadline of each stage. The masked-vector stage includes the sites' local work (training or statistics). */
  readonly stageMs: number;
  readonly signal: AbortSignal;
  readonly logger: Logger;
  /** The setup context for one site (without `modelIncluded`, which the connection fills in). */
  readonly setupFor: (siteId: string) => Omit<SecAggSetupContext, 'modelIncluded'>;
  readonly modelBytes: Uint8Array;
  readonly hooks?: SecAggTestHooks;
}

export interface DriveFailure {
  readonly siteId: string;
  readonly code: FailureCode;
  readonly reason: string;
  readonly stage: SecAggStage;
}

export interface SecAggDriveOutcome {
  /** The unmasked sum, or null when the run aborted. */
  readonly result: SecAggResult | null;
  readonly error: SecAggError | null;
  /** Per-site reasons for not being in the sum (one entry per site, the first stage it failed). */
  readonly failures: DriveFailure[];
}

function failureCode(e: unknown): FailureCode {
  if (e instanceof SiteRequestError) return e.code;
  return 'invalid_reply';
}

/** Runs all stages; never throws for site behaviour (that becomes failures / an aborted outcome). */
export async function driveSecAgg(input: SecAggDriveInput): Promise<SecAggDriveOutcome> {
  const { config, sessionId, registry, hooks } = input;
  const workflow = new SecAggServerWorkflow(config, input.enrolled);
  const failures = new Map<string, DriveFailure>();
  const fail = (siteId: string, stage: SecAggStage, e: unknown): void => {
    if (failures.has(siteId)) return;
    const reason = (e as Error)?.message ?? String(e);
    failures.set(siteId, { siteId, stage, code: failureCode(e), reason });
    input.logger.warn({ sessionId, siteId, stage, reason }, 'site dropped out of secure aggregation');
  };
  const setup = workflow.setupInstruction();
  let outbox = new Map<string, SecAggInstruction>(config.siteIds.map((id) => [id, setup]));
  try {
    for (const stage of SECAGG_STAGES) {
      if (input.signal.aborted) throw new SecAggError('aborted', 'coordinator stopped');
      await runStage(input, workflow, stage, outbox, fail, hooks);
      for (const id of outbox.keys()) {
        if (!workflow.responders(stage).includes(id)) fail(id, stage, new SiteRequestError('timeout', `no ${stage} reply`));
      }
      outbox = workflow.closeStage();
    }
    const result = await workflow.finish();
    return { result, error: null, failures: [...failures.values()] };
  } catch (e) {
    const error = isSecAggError(e) ? e : new SecAggError('aborted', (e as Error).message);
    input.logger.warn({ sessionId, err: error.message }, 'secure aggregation aborted; nothing was revealed');
    return { result: null, error, failures: [...failures.values()] };
  }
}

async function runStage(
  input: SecAggDriveInput,
  workflow: SecAggServerWorkflow,
  stage: SecAggStage,
  outbox: Map<string, SecAggInstruction>,
  fail: (siteId: string, stage: SecAggStage, e: unknown) => void,
  hooks: SecAggTestHooks | undefined,
): Promise<void> {
  let open = true;
  const key = `secagg:${input.sessionId}:${stage}`;
  const calls = [...outbox].map(async ([to, original]) => {
    try {
      const conn = input.registry.get(to);
      if (!conn) throw new SiteRequestError('disconnected', `site left before ${stage}`);
      const ins = hooks?.tamper ? hooks.tamper(to, original) : original;
      const wire = instructionToWire(ins);
      const setup = stage === 'setup' ? { context: input.setupFor(to), modelBytes: input.modelBytes } : undefined;
      const raw = await conn.secagg(input.sessionId, stage, wire, setup);
      if (!open) return; // late: the stage is closed, the site already counts as dropped
      const reply = replyFromWire(raw.message, raw.masked);
      if (reply.type !== 'secagg/advertise-keys' && reply.siteId !== to) {
        throw new SecAggError('malformed-message', `reply names "${reply.siteId}" on the session of "${to}"`);
      }
      if (reply.type === 'secagg/advertise-keys' && reply.siteId !== to) {
        throw new SecAggError('malformed-message', `keys name "${reply.siteId}" on the session of "${to}"`);
      }
      hooks?.onReply?.(to, reply);
      workflow.receive(reply);
    } catch (e) {
      if (open) fail(to, stage, e);
    }
  });
  let timer: ReturnType<typeof setTimeout> | undefined;
  let onAbort: (() => void) | undefined;
  const deadline = new Promise<void>((resolve) => {
    if (Number.isFinite(input.stageMs)) timer = setTimeout(resolve, input.stageMs);
    onAbort = () => resolve();
    input.signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    await Promise.race([Promise.allSettled(calls), deadline]);
  } finally {
    open = false;
    if (timer) clearTimeout(timer);
    if (onAbort) input.signal.removeEventListener('abort', onAbort);
    const err = new SiteRequestError('timeout', `${stage} stage closed after ${input.stageMs} ms`);
    for (const id of outbox.keys()) input.registry.get(id)?.cancelKey(key, err);
  }
}
