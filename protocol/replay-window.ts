/**
 * Sliding anti-replay window over envelope counters (the IPsec / WireGuard scheme, RFC 6479 in spirit):
 * counters newer than the highest seen are accepted; older ones are accepted once if still inside the window.
 */
import { ProtocolError } from './errors.ts';

export class ReplayWindow {
  private highest = -1;
  private readonly slots: Float64Array;

  constructor(readonly size = 64) {
    this.slots = new Float64Array(size).fill(-1);
  }

  /** Throw 'replay' or 'reordered' if `counter` must be refused. Does not record it. */
  check(counter: number): void {
    if (counter > this.highest) return;
    if (counter <= this.highest - this.size) {
      throw new ProtocolError('reordered', `counter ${counter} is older than the replay window (highest ${this.highest})`);
    }
    if (this.slots[counter % this.size] === counter) throw new ProtocolError('replay', `counter ${counter} already seen`);
  }

  /** Record an authenticated counter. Call only after the envelope's MAC verified. */
  record(counter: number): void {
    this.check(counter);
    this.slots[counter % this.size] = counter;
    if (counter > this.highest) this.highest = counter;
  }
}
