import { Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { registerPrivacyCommands } from './cli.ts';
import { PrivacyError } from './privacy-error.ts';

let out: string[];

async function run(...args: string[]): Promise<string> {
  out = [];
  const program = new Command().exitOverride().configureOutput({ writeErr: () => {} });
  registerPrivacyCommands(program);
  await program.parseAsync(['node', 'fedsfda', 'privacy', ...args]);
  return out.join('');
}

beforeEach(() => {
  vi.spyOn(process.stdout, 'write').mockImplementation((s: string | Uint8Array) => {
    out.push(String(s));
    return true;
  });
});
afterEach(() => vi.restoreAllMocks());

describe('fedsfda privacy', () => {
  it('epsilon --json prints {"epsilon", "order"} as Opacus computes it', async () => {
    // Opacus 4d0ebc84, RDPAccountant default orders: (q=0.01, z=1.1, 10000 steps, delta 1e-5) -> 5.63199236854841 at 4.7.
    const got = JSON.parse(await run('epsilon', '--sampling-rate', '0.01', '--noise-multiplier', '1.1', '--steps', '10000', '--delta', '1e-5', '--json'));
    expect(Object.keys(got)).toEqual(['epsilon', 'order']);
    expect(got.epsilon).toBeCloseTo(5.63199236854841, 9);
    expect(got.order).toBe(4.7);
    expect(await run('epsilon', '--sampling-rate', '0.01', '--noise-multiplier', '1.1', '--steps', '10000', '--delta', '1e-5')).toMatch(/^epsilon 5\.63\d+ .* order 4\.7/);
  });

  it('epsilon without noise is unbounded (null in JSON)', async () => {
    expect(JSON.parse(await run('epsilon', '--sampling-rate', '1', '--noise-multiplier', '0', '--steps', '3', '--delta', '1e-5', '--json'))).toEqual({ epsilon: null, order: null });
  });

  it('calibrate prints the noise multiplier that meets the budget', async () => {
    const z = Number(await run('calibrate', '--sampling-rate', '1', '--steps', '50', '--delta', '1e-5', '--epsilon', '8'));
    expect(z).toBeCloseTo(4.50900912, 6); // Opacus-style bisection on Opacus's accountant (reference/opacus-vectors.json)
    const back = JSON.parse(await run('epsilon', '--sampling-rate', '1', '--noise-multiplier', String(z), '--steps', '50', '--delta', '1e-5', '--json'));
    expect(back.epsilon).toBeLessThanOrEqual(8);
    expect(back.epsilon).toBeGreaterThan(8 - 1e-6);
  });

  it('refuses bad arguments with typed errors naming the flag', async () => {
    await expect(run('epsilon', '--sampling-rate', '2', '--noise-multiplier', '1', '--steps', '3', '--delta', '1e-5')).rejects.toThrow(/--sampling-rate must be a number in \[0, 1\]/);
    await expect(run('epsilon', '--sampling-rate', '0.1', '--noise-multiplier', 'x', '--steps', '3', '--delta', '1e-5')).rejects.toBeInstanceOf(PrivacyError);
    await expect(run('epsilon', '--sampling-rate', '0.1', '--noise-multiplier', '1', '--steps', '2.5', '--delta', '1e-5')).rejects.toThrow(/--steps/);
    await expect(run('calibrate', '--sampling-rate', '0.1', '--steps', '3', '--delta', '0', '--epsilon', '1')).rejects.toThrow(/--delta/);
    await expect(run('calibrate', '--sampling-rate', '0.1', '--steps', '3', '--delta', '1e-5', '--epsilon', '1', '--orders', '1,2')).rejects.toThrow(/--orders/);
    await expect(run('calibrate', '--sampling-rate', '1', '--steps', '3', '--delta', '1e-5')).rejects.toMatchObject({ code: 'commander.missingMandatoryOptionValue' });
  });
});
