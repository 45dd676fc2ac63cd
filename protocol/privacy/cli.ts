/**
 * `fedsfda privacy epsilon` (what a sampled Gaussian run spends) and `fedsfda privacy calibrate` (the noise
 * multiplier that meets a budget). Both use Opacus's default RDP orders unless `--orders` is given.
 */
import type { Command } from 'commander';
import { calibrateNoiseMultiplier, sampledGaussianEpsilon } from './calibrate.ts';
import { DEFAULT_ORDERS } from './epsilon.ts';
import { PrivacyError } from './privacy-error.ts';

function numberArg(flag: string, check: (n: number) => boolean, what: string) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n) || !check(n)) throw new PrivacyError('bad-argument', `--${flag} must be ${what}, got "${v}"`);
    return n;
  };
}

const rate = numberArg('sampling-rate', (n) => n >= 0 && n <= 1, 'a number in [0, 1]');
const steps = numberArg('steps', (n) => Number.isInteger(n) && n >= 0, 'an integer >= 0');
const delta = numberArg('delta', (n) => n > 0 && n < 1, 'a number in (0, 1)');
const multiplier = numberArg('noise-multiplier', (n) => n >= 0, 'a number >= 0');
const epsilon = numberArg('epsilon', (n) => n > 0, 'a number > 0');

function ordersArg(v: string): number[] {
  const orders = v.split(',').map((s) => Number(s.trim()));
  if (orders.length === 0 || orders.some((a) => !Number.isFinite(a) || a <= 1)) {
    throw new PrivacyError('bad-argument', `--orders must be a comma-separated list of numbers > 1, got "${v}"`);
  }
  return orders;
}

/** JSON has no Infinity: an unbounded epsilon prints as null. */
function jsonNumber(x: number): number | null {
  return Number.isFinite(x) ? x : null;
}

export function registerPrivacyCommands(program: Command): void {
  const privacy = program.command('privacy').description('differential-privacy accounting (RDP of the sampled Gaussian mechanism, as Opacus)');
  privacy
    .command('epsilon')
    .description('epsilon spent by T steps of the sampled Gaussian mechanism at a given delta')
    .requiredOption('--sampling-rate <q>', 'probability that a record (a site, an example) takes part in a step', rate)
    .requiredOption('--noise-multiplier <z>', 'noise std / L2 sensitivity', multiplier)
    .requiredOption('--steps <T>', 'number of steps (rounds, DP-SGD iterations)', steps)
    .requiredOption('--delta <d>', 'target delta', delta)
    .option('--orders <list>', 'RDP orders to search (default: Opacus 1.1..10.9, 12..63)', ordersArg)
    .option('--json', 'print {"epsilon": E, "order": A} (epsilon null when unbounded)')
    .action((o: { samplingRate: number; noiseMultiplier: number; steps: number; delta: number; orders?: number[]; json?: boolean }) => {
      const spent = sampledGaussianEpsilon({ samplingRate: o.samplingRate, noiseMultiplier: o.noiseMultiplier, steps: o.steps, delta: o.delta, orders: o.orders ?? DEFAULT_ORDERS });
      if (o.json) {
        process.stdout.write(JSON.stringify({ epsilon: jsonNumber(spent.epsilon), order: Number.isFinite(spent.epsilon) ? spent.order : null }) + '\n');
        return;
      }
      const where = Number.isFinite(spent.epsilon) ? ` at RDP order ${spent.order}` : ' (no noise: no privacy)';
      const edge = spent.orderAtBoundary ? ' [optimum at the edge of the orders searched: try --orders with a wider range]' : '';
      process.stdout.write(`epsilon ${spent.epsilon} (delta ${o.delta})${where}${edge}\n`);
    });
  privacy
    .command('calibrate')
    .description('smallest noise multiplier whose epsilon after T steps is <= the target')
    .requiredOption('--sampling-rate <q>', 'probability that a record takes part in a step', rate)
    .requiredOption('--steps <T>', 'number of steps', steps)
    .requiredOption('--delta <d>', 'target delta', delta)
    .requiredOption('--epsilon <e>', 'target epsilon', epsilon)
    .option('--orders <list>', 'RDP orders to search (default: Opacus 1.1..10.9, 12..63)', ordersArg)
    .option('--json', 'print {"noiseMultiplier": Z, "epsilon": E, "order": A}')
    .action((o: { samplingRate: number; steps: number; delta: number; epsilon: number; orders?: number[]; json?: boolean }) => {
      const c = calibrateNoiseMultiplier({ samplingRate: o.samplingRate, steps: o.steps, delta: o.delta, epsilon: o.epsilon, orders: o.orders });
      process.stdout.write(o.json ? JSON.stringify(c) + '\n' : `${c.noiseMultiplier}\n`);
    });
}
