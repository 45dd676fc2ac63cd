/**
 * One secure-aggregation run (SecAgg+, Bonawitz et al. 2017; Bell et al. 2020) over the sites' encrypted sessions,
 * shared by the secure fit workflow and the statistics workflow (STYLE.md habit 3: the workflow that wraps a
 * strategy). `prepareSecAgg` is the common setup (session id, config, the participants' enrolled keys);
 * `driveSecAgg` runs the five stages: for each, every recipient gets its instruction through the one request
 * helper under the stage deadline, each reply is fed to `SecAggServerWorkflow.receive` (masked vectors are folded
 * into the running sum as they arrive), then `closeStage()` — sites that did not answer are dropouts. Fewer than
 * t survivors aborts with `SecAggError('below-threshold')`, and nothing partial is revealed (the workflow wipes
 * its sum). No strategy math here.
 */
import nacl from 'tweetnacl';
import { toBase64, toHex, type Enrollment, type SecAggSetupContext } from '../../protocol/index.ts';
import {
  instructionToWire,
  isSecAggError,
  makeSecAggConfig,
  replyFromWire,
  SECAGG_STAGES,
  SecAggError,
  SecAggServerWorkflow,
  type QuantConfig,
  type SecAggConfig,
  type SecAggInstruction,
  type SecAggReply,
  type SecAggResult,
  type SecAggStage,
} from '../../protocol/secagg/index.ts';
import { deadlineIn, requestKey, requestSite, SiteRequestError } from '../sites/index.ts';
import type { FailureCode } from '../strategies/index.ts';
import { failureCodeOf } from './failures.ts';
import type { EncodedModel, ExchangeContext } from './fit-workflow.ts';

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

/** A fresh SecAgg session id: `<prefix>-<16 hex>` (`fit-r3-...`, `stats-...`). */
export function newSessionId(prefix: string): string {
  return `${prefix}-${toHex(nacl.randomBytes(8))}`;
}

export interface SecAggPlan {
  /** From `newSessionId`. */
  readonly sessionId: string;
  readonly siteIds: readonly string[];
  readonly vectorLength: number;
  readonly quant: QuantConfig;
  readonly degree?: number;
  readonly threshold?: number;
  readonly enrollment: Enrollment;
}

/** A run's public parameters and its participants' enrolled identity keys (raw for the workflow, base64 for the wire). */
export interface PreparedSecAgg {
  readonly sessionId: string;
  readonly config: SecAggConfig;
  readonly enrolled: Map<string, Uint8Array>;
  readonly enrolledB64: Record<string, string>;
}

/** The setup shared by every secure run; throws SecAggError (`bad-config`, `unknown-site`) for a run that cannot start. */
export function prepareSecAgg(plan: SecAggPlan): PreparedSecAgg {
  const { sessionId } = plan;
  const config = makeSecAggConfig({
    roundId: sessionId,
    siteIds: plan.siteIds,
    vectorLength: plan.vectorLength,
    quant: plan.quant,
    ...(plan.degree !== undefined ? { degree: plan.degree } : {}),
    ...(plan.threshold !== undefined ? { threshold: plan.threshold } : {}),
  });
  const enrolled = new Map<string, Uint8Array>();
  for (const id of plan.siteIds) {
    const k = plan.enrollment.keyOf(id);
    if (!k) throw new SecAggError('unknown-site', `"${id}" has no enrolled identity key`);
    enrolled.set(id, k);
  }
  return { sessionId, config, enrolled, enrolledB64: Object.fromEntries([...enrolled].map(([id, k]) => [id, toBase64(k)])) };
}

/** Observes a run's progress (the coordinator's status page); never sees a secret or a vector. */
export interface SecAggMonitor {
  started(run: { sessionId: string; purpose: 'fit' | 'statistics'; round: number; participants: readonly string[]; threshold: number; degree: number }): void;
  stage(sessionId: string, stage: SecAggStage, recipients: readonly string[]): void;
  replied(sessionId: string, siteId: string): void;
  dropped(sessionId: string, siteId: string): void;
  ended(sessionId: string, error: string | null): void;
}

export interface SecAggDriveInput extends ExchangeContext {
  readonly purpose: 'fit' | 'statistics';
  readonly monitor?: SecAggMonitor;
  readonly prepared: PreparedSecAgg;
  /** The setup context for one site (without `modelIncluded`, which the connection fills in). */
  readonly setupFor: (siteId: string) => Omit<SecAggSetupContext, 'modelIncluded'>;
  readonly model: EncodedModel;
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

/** Runs all stages; never throws for site behaviour (that becomes failures / an aborted outcome). */
export async function driveSecAgg(input: SecAggDriveInput): Promise<SecAggDriveOutcome> {
  const { config, sessionId } = input.prepared;
  const workflow = new SecAggServerWorkflow(config, input.prepared.enrolled);
  const failures = new Map<string, DriveFailure>();
  const fail = (siteId: string, stage: SecAggStage, e: unknown): void => {
    if (failures.has(siteId)) return;
    const reason = (e as Error)?.message ?? String(e);
    failures.set(siteId, { siteId, stage, code: failureCodeOf(e), reason });
    input.logger.warn({ code: 'secagg_dropout', sessionId, siteId, stage, failure: failureCodeOf(e), reason }, 'site dropped out of secure aggregation');
    input.monitor?.dropped(sessionId, siteId);
  };
  input.monitor?.started({ sessionId, purpose: input.purpose, round: input.round, participants: config.siteIds, threshold: config.threshold, degree: config.degree });
  const setup = workflow.setupInstruction();
  let outbox = new Map<string, SecAggInstruction>(config.siteIds.map((id) => [id, setup]));
  try {
    for (const stage of SECAGG_STAGES) {
      if (input.signal.aborted) throw new SecAggError('aborted', 'coordinator stopped');
      input.monitor?.stage(sessionId, stage, [...outbox.keys()]);
      await runStage(input, workflow, stage, outbox, fail);
      for (const id of outbox.keys()) {
        if (!workflow.responders(stage).includes(id)) fail(id, stage, new SiteRequestError('timeout', `no ${stage} reply`));
      }
      outbox = workflow.closeStage();
    }
    const result = await workflow.finish();
    input.monitor?.ended(sessionId, null);
    return { result, error: null, failures: [...failures.values()] };
  } catch (e) {
    const error = isSecAggError(e) ? e : new SecAggError('aborted', (e as Error).message);
    input.logger.warn({ code: 'secagg_aborted', sessionId, secaggCode: error.code, err: error.message }, 'secure aggregation aborted; nothing was revealed');
    input.monitor?.ended(sessionId, error.message);
    return { result: null, error, failures: [...failures.values()] };
  }
}

async function runStage(
  input: SecAggDriveInput,
  workflow: SecAggServerWorkflow,
  stage: SecAggStage,
  outbox: Map<string, SecAggInstruction>,
  fail: (siteId: string, stage: SecAggStage, e: unknown) => void,
): Promise<void> {
  const { sessionId } = input.prepared;
  const deadline = deadlineIn(input.stageMs);
  const calls = [...outbox].map(async ([to, original]) => {
    try {
      const ins = input.hooks?.tamper ? input.hooks.tamper(to, original) : original;
      const wire = instructionToWire(ins);
      const setup = stage === 'setup' ? { context: input.setupFor(to), model: input.model } : undefined;
      const raw = await requestSite(
        input.registry,
        {
          siteId: to,
          label: `secagg:${stage}`,
          deadline,
          signal: input.signal,
          // Re-issued on a site's new connection after a drop: the site answers an identical instruction of the stage
          // it already answered with the same reply (site-agent/client/secagg-mod.ts), never with a new one.
          reconnectGraceMs: input.reconnectGraceMs,
          call: (conn) => conn.secagg(sessionId, stage, wire, setup),
          cancel: (conn, err) => conn.cancel(requestKey.secagg(sessionId, stage), err),
        },
        input.logger,
      );
      const reply = replyFromWire(raw.message, raw.masked);
      if (reply.siteId !== to) throw new SecAggError('malformed-message', `reply names "${reply.siteId}" on the session of "${to}"`);
      input.hooks?.onReply?.(to, reply);
      workflow.receive(reply);
      input.monitor?.replied(sessionId, to);
    } catch (e) {
      fail(to, stage, e);
    }
  });
  // Every request settles by the stage deadline (or at once on stop): the stage is then closed by the caller.
  await Promise.allSettled(calls);
}
