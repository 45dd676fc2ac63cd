/**
 * Federated evaluation of a model: every instructed site scores it on its local validation split. Used for each
 * round's aggregated model and, when the strategy asks for it, for the initial model as round 0.
 */
import { deadlineIn, requestKey, requestSite } from '../sites/index.ts';
import type { EvaluateInstruction, EvaluateResult, RoundFailure } from '../strategies/index.ts';
import { failureOf } from './failures.ts';
import type { EncodedModel, ExchangeContext } from './fit-workflow.ts';

export interface EvaluationOutcome {
  readonly results: EvaluateResult[];
  readonly failures: RoundFailure[];
}

export async function runEvaluation(ctx: ExchangeContext, instructions: readonly EvaluateInstruction[], model: EncodedModel): Promise<EvaluationOutcome> {
  const { round } = ctx;
  const deadline = deadlineIn(ctx.stageMs);
  const outcomes = await Promise.allSettled(
    instructions.map(async (ins): Promise<EvaluateResult> => {
      const rep = await requestSite(
        ctx.registry,
        {
          siteId: ins.siteId,
          label: 'evaluate',
          deadline,
          signal: ctx.signal,
          reconnectGraceMs: ctx.reconnectGraceMs,
          call: (conn) => conn.evaluate(round, ins.config, model),
          cancel: (conn, err) => conn.cancel(requestKey.evaluate(round), err),
        },
        ctx.logger,
      );
      ctx.onReply?.({ stage: 'evaluate', siteId: ins.siteId, numExamples: rep.numExamples, metrics: rep.metrics });
      return { siteId: ins.siteId, numExamples: rep.numExamples, metrics: rep.metrics };
    }),
  );
  const results: EvaluateResult[] = [];
  const failures: RoundFailure[] = [];
  outcomes.forEach((r, i) => (r.status === 'fulfilled' ? results.push(r.value) : failures.push(failureOf(instructions[i].siteId, 'evaluate', r.reason))));
  return { results, failures };
}
