/**
 * What a coordinator-to-site request is keyed and typed by: the pending-request key of each instruction and of the
 * reply that answers it, the reply types and their successful bodies, and the error a failed request ends with (with
 * the failure code the strategy sees).
 */
import type { MessageOf } from '../../protocol/index.ts';
import type { FailureCode } from '../strategies/index.ts';

/** A failed request to a site, with the code the strategy will see. */
export class SiteRequestError extends Error {
  override readonly name = 'SiteRequestError';
  constructor(
    readonly code: FailureCode,
    reason: string,
    /** For `disconnected`: the site ended its session on purpose (it is not waited for to come back). */
    readonly siteLeft = false,
  ) {
    super(reason);
  }
}

export type SecAggWireStage = MessageOf<'secaggIns'>['stage'];
export type ReplyType = 'fitRes' | 'evaluateRes' | 'secaggRes' | 'statsRes';
/** The successful reply body of a reply type (`{ok: true, ...}`). */
export type OkReply<T extends ReplyType> = Extract<MessageOf<T>['reply'], { ok: true }>;

/** The pending-request key of each reply type (fit/evaluate by round, secagg by session and stage, stats by session). */
export const requestKey = {
  fit: (round: number) => `fit:${round}`,
  evaluate: (round: number) => `evaluate:${round}`,
  secagg: (sessionId: string, stage: SecAggWireStage) => `secagg:${sessionId}:${stage}`,
  statistics: (sessionId: string) => `stats:${sessionId}`,
};

export function keyOfReply(m: MessageOf<ReplyType>): string {
  switch (m.type) {
    case 'fitRes':
      return requestKey.fit(m.round);
    case 'evaluateRes':
      return requestKey.evaluate(m.round);
    case 'secaggRes':
      return requestKey.secagg(m.sessionId, m.stage);
    case 'statsRes':
      return requestKey.statistics(m.sessionId);
    default: {
      const never: never = m;
      throw new Error(`unhandled reply ${String(never)}`);
    }
  }
}
