/**
 * Phantom generation speed: 4 sites x 40 slices of 48x48 (the simulation's default scale), wall and CPU time.
 *
 *   npx tsx simulations/phantoms/bench-generate.ts [--reps 5]
 *
 * CPU time is reported too because wall time on a shared machine mostly measures the other processes.
 */
import { generateSiteData } from './generate-site-data.ts';

const i = process.argv.indexOf('--reps');
const reps = i >= 0 ? Number(process.argv[i + 1]) : 5;
const presets = ['scanner-a', 'scanner-b', 'scanner-c', 'mr-to-ct'] as const;
for (let r = 0; r < reps; r++) {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  presets.forEach((shift, s) => generateSiteData({ seed: s + 1, numCases: 8, slicesPerCase: 5, size: 48, numClasses: 4, shift }));
  const c = process.cpuUsage(c0);
  console.log(`rep ${r + 1}: 4 sites x 40 slices 48x48: wall ${(performance.now() - t0).toFixed(0)} ms, cpu ${((c.user + c.system) / 1000).toFixed(0)} ms`);
}
