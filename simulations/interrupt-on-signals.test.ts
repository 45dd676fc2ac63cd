import { EventEmitter } from 'node:events';
import { describe, expect, it, vi } from 'vitest';
import { interruptOnSignals, type SignalSource } from './interrupt-on-signals.ts';

const source = (): EventEmitter & SignalSource => new EventEmitter() as EventEmitter & SignalSource;

describe('interruptOnSignals', () => {
  it.each(['SIGINT', 'SIGTERM'] as const)('the first %s aborts the run with the signal as reason, without forcing', (sig) => {
    const src = source();
    const forceStop = vi.fn();
    const i = interruptOnSignals({ forceStop, source: src });
    src.emit(sig, sig);
    expect(i.signal.aborted).toBe(true);
    expect(i.signal.reason).toBe(sig);
    expect(forceStop).not.toHaveBeenCalled();
    i.dispose();
  });

  it('a second signal (either kind) forces the stop at once, every time', () => {
    const src = source();
    const forceStop = vi.fn();
    const i = interruptOnSignals({ forceStop, source: src });
    src.emit('SIGINT', 'SIGINT');
    src.emit('SIGTERM', 'SIGTERM');
    expect(forceStop).toHaveBeenCalledExactlyOnceWith('SIGTERM');
    src.emit('SIGINT', 'SIGINT');
    expect(forceStop).toHaveBeenCalledTimes(2);
    expect(i.signal.reason).toBe('SIGINT');
    i.dispose();
  });

  it('dispose removes both listeners', () => {
    const src = source();
    const i = interruptOnSignals({ forceStop: vi.fn(), source: src });
    expect(src.listenerCount('SIGINT') + src.listenerCount('SIGTERM')).toBe(2);
    i.dispose();
    expect(src.listenerCount('SIGINT') + src.listenerCount('SIGTERM')).toBe(0);
  });
});
