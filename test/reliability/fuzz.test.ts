/**
 * A bounded run of scripts/reliability-fuzz.ts (issue 11): hundreds of mutated and hostile messages of every kind
 * (socket.io events and envelopes before and after an authenticated handshake, the engine.io polling path, raw
 * websocket frames, random HTTP, raw TCP) against the real `fedsfda coordinator` process while three toy sites train.
 * The coordinator must never exit early, the run must aggregate every round and end with exit 0 (a stranger's
 * half-open connection once left it ending with exit 13). The full 10,000-message run is in RELIABILITY.md.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../scripts/reliability-fuzz.ts', import.meta.url));
const TSX = import.meta.resolve('tsx');

describe('the fuzzer, bounded', () => {
  it('sends hundreds of hostile messages of every kind: no coordinator exit, the run completes', async () => {
    const child = spawn(process.execPath, ['--import', TSX, SCRIPT, '--messages', '600', '--rounds', '300', '--seed', '7'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    const report = JSON.parse(out) as { messages: number; byKind: Record<string, number>; coordinatorExit: number; runCompleted: boolean };
    expect(report.coordinatorExit).toBe(0);
    expect(report.runCompleted).toBe(true);
    expect(code).toBe(0);
    expect(report.messages).toBeGreaterThanOrEqual(300);
    for (const kind of ['socketio', 'authenticated', 'polling', 'websocket', 'http', 'tcp']) expect(report.byKind[kind], kind).toBeGreaterThan(0);
  }, 480_000);
});
