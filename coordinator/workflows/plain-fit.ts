/**
 * The plain fit workflow: every selected site receives the model (sealed, chunked, skipped when it already holds
 * it), trains, and uploads its update; each update is decoded under the size limit and checked against the global
 * model before the strategy sees it.
 */
import { decodeWeightSet } from '../../protocol/index.ts';
import { deadlineIn, requestKey, requestSite, SiteRequestError } from '../sites/index.ts';
import { checkUpdateMatches, type FitInstruction, type FitResult, type RoundFailure } from '../strategies/index.ts';
import { failureOf } from './failures.ts';
import type { FitInput, FitOutcome, FitWorkflow } from './fit-workflow.ts';

export class PlainFitWorkflow implements FitWorkflow {
  readonly kind = 'plain';

  async fit(input: FitInput): Promise<FitOutcome> {
    const deadline = deadlineIn(input.stageMs);
    const outcomes = await Promise.allSettled(input.instructions.map((ins) => this.fitOne(input, ins, deadline)));
    const results: FitResult[] = [];
    const failures: RoundFailure[] = [];
    outcomes.forEach((r, i) => (r.status === 'fulfilled' ? results.push(r.value) : failures.push(failureOf(input.instructions[i].siteId, 'fit', r.reason))));
    return { results, failures };
  }

  private async fitOne(input: FitInput, ins: FitInstruction, deadline: number): Promise<FitResult> {
    const { round } = input;
    const rep = await requestSite(
      input.registry,
      {
        siteId: ins.siteId,
        label: 'fit',
        deadline,
        signal: input.signal,
        reconnectGraceMs: input.reconnectGraceMs,
        call: (conn) => conn.fit(round, ins.config, input.model),
        cancel: (conn, err) => conn.cancel(requestKey.fit(round), err),
      },
      input.logger,
    );
    const weights = decodeWeightSet(rep.update, { maxBytes: input.maxUpdateBytes });
    checkUpdateMatches(input.global, weights);
    if (rep.numExamples <= 0) throw new SiteRequestError('invalid_reply', 'update reports 0 examples');
    input.onReply?.({ stage: 'fit', siteId: ins.siteId, numExamples: rep.numExamples, metrics: rep.metrics });
    return { siteId: ins.siteId, weights, numExamples: rep.numExamples, metrics: rep.metrics };
  }
}
