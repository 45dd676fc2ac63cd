/** The round state machine's stages and the transitions allowed between them (checked before each one runs). */
import { CoordinatorError } from '../errors/index.ts';

export type Stage =
  | 'idle'
  | 'waiting_for_sites'
  | 'fit'
  | 'aggregate_fit'
  | 'evaluate'
  | 'aggregate_evaluate'
  | 'checkpoint'
  | 'after_rounds'
  | 'finished'
  | 'stopped';

const TRANSITIONS: Record<Stage, readonly Stage[]> = {
  idle: ['waiting_for_sites', 'after_rounds', 'finished', 'stopped'],
  // Round 0 (the initial model's evaluation) goes from waiting straight to evaluate.
  waiting_for_sites: ['fit', 'evaluate', 'stopped'],
  fit: ['aggregate_fit', 'stopped'],
  aggregate_fit: ['evaluate', 'stopped'],
  evaluate: ['aggregate_evaluate', 'stopped'],
  aggregate_evaluate: ['checkpoint', 'stopped'],
  checkpoint: ['waiting_for_sites', 'after_rounds', 'finished', 'stopped'],
  after_rounds: ['finished', 'stopped'],
  finished: [],
  stopped: [],
};

/** Throws CoordinatorError('bad_transition') unless `from -> to` is allowed. */
export function checkTransition(from: Stage, to: Stage): void {
  if (!TRANSITIONS[from].includes(to)) throw new CoordinatorError('bad_transition', `${from} -> ${to}`);
}
