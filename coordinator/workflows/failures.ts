/** Turning an exchange's error into the failure record the strategy and the round record get. */
import { SiteRequestError } from '../sites/index.ts';
import type { FailureCode, RoundFailure } from '../strategies/index.ts';

export function failureCodeOf(e: unknown): FailureCode {
  return e instanceof SiteRequestError ? e.code : 'invalid_reply';
}

export function failureOf(siteId: string, stage: RoundFailure['stage'], e: unknown): RoundFailure {
  return { siteId, stage, code: failureCodeOf(e), reason: (e as Error)?.message ?? String(e) };
}
