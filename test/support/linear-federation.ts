/**
 * A small federation for transport/REST/dashboard tests: least-squares sites (test/support/least-squares-trainer.ts)
 * enrolled at a real socket.io coordinator on 127.0.0.1:0. Callers close the coordinator (`handle.close()`).
 */
import { startCoordinator, type CoordinatorHandle, type CoordinatorOptions } from '../../coordinator/start-coordinator.ts';
import { FedAvg } from '../../coordinator/strategies/fedavg.ts';
import { Enrollment } from '../../protocol/enrollment.ts';
import { generateIdentity, type Identity } from '../../protocol/identity.ts';
import { LeastSquaresTrainer, linearWeights, makeLinearData } from './least-squares-trainer.ts';
import { GENEROUS_TIMEOUTS } from './bounds.ts';

export interface LinearSite {
  readonly id: string;
  readonly identity: Identity;
  readonly trainer: LeastSquaresTrainer;
}

/** `ids.length` sites with 20 examples each of y = x . [1, -2, 0.5] + 0.3 + noise (data seed = seed + index). */
export function linearSites(ids: readonly string[], seed: number): LinearSite[] {
  return ids.map((id, i) => ({ id, identity: generateIdentity(), trainer: new LeastSquaresTrainer(makeLinearData(seed + i, 20, 3, [1, -2, 0.5], 0.3), 3) }));
}

/** A coordinator with these sites enrolled, FedAvg (1 local epoch, lr 0.1), a zero 3-weight linear model. */
export function linearCoordinator(sites: readonly LinearSite[], extra: Partial<CoordinatorOptions> = {}): Promise<CoordinatorHandle> {
  const enrollment = new Enrollment();
  for (const s of sites) enrollment.allow(s.id, s.identity.publicKey);
  return startCoordinator({
    identity: generateIdentity(),
    enrollment,
    initialWeights: linearWeights(new Float32Array(3), 0),
    rounds: 1,
    minSites: 1,
    strategy: new FedAvg({ localEpochs: 1, lr: 0.1 }),
    port: 0,
    timeouts: GENEROUS_TIMEOUTS,
    ...extra,
  });
}
