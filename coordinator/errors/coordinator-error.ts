/** The coordinator's typed in-process error (bad options, a stopped coordinator, a quorum never reached). */
export type CoordinatorErrorCode = 'bad_transition' | 'not_enough_sites' | 'stopped' | 'bad_options';

export class CoordinatorError extends Error {
  override readonly name = 'CoordinatorError';
  constructor(
    readonly code: CoordinatorErrorCode,
    reason: string,
  ) {
    super(`${code}: ${reason}`);
  }
}
