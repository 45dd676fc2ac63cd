/**
 * The `fedsfda` command line. Each subsystem contributes its commands through a `register*Commands`
 * function so that this file stays a table of contents.
 */
import { Command } from 'commander';
import { registerSimulateCommands } from '../simulations/cli.ts';
import { registerDataCommands } from '../site-agent/data/cli/index.ts';
import { registerCoordinatorCommands } from '../coordinator/cli.ts';
import { registerEngineCommands } from '../site-agent/engine/index.ts';
import { registerModelCommands } from '../site-agent/model/cli.ts';
import { registerAdaptCommands } from '../site-agent/adapt/adapt-command.ts';
import { registerSiteCommands } from '../site-agent/cli/index.ts';
import { registerPrivacyCommands } from '../protocol/privacy/index.ts';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('fedsfda')
    .description('Federated, privacy-preserving medical image segmentation with source-free domain adaptation')
    .showHelpAfterError();
  registerSimulateCommands(program);
  registerDataCommands(program);
  registerCoordinatorCommands(program);
  registerEngineCommands(program);
  registerModelCommands(program);
  registerAdaptCommands(program);
  registerSiteCommands(program);
  registerPrivacyCommands(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: string };
    console.error(`fedsfda: ${e.code ? `[${e.code}] ` : ''}${e.message}`);
    process.exitCode = 1;
  }
}
