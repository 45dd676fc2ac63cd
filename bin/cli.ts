/**
 * The `fedsfda` command line. Each subsystem contributes its commands through a `register*Commands`
 * function so that this file stays a table of contents.
 */
import { Command } from 'commander';

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('fedsfda')
    .description('Federated, privacy-preserving medical image segmentation with source-free domain adaptation')
    .showHelpAfterError();
  // Subsystems register here (see each module's register function).
  await program.parseAsync(argv);
}
