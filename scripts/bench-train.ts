/**
 * Standalone entry for the training benchmark: `npx tsx scripts/bench-train.ts --json`
 * (same options as `fedsfda bench train`; `npm run bench:train -- --json` goes through the CLI).
 */
import { Command } from 'commander';
import { registerEngineCommands } from '../site-agent/engine/index.ts';

const program = new Command().name('bench-train');
registerEngineCommands(program);
await program.parseAsync(['node', 'bench-train', 'bench', 'train', ...process.argv.slice(2)]);
