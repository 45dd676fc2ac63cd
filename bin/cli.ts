/**
 * The `fedsfda` command line. Each subsystem contributes its commands through a `register*Commands`
 * function so that this file stays a table of contents.
 */
import { Command, Option } from 'commander';
import { createLogger, setProcessLogger, LOG_LEVELS, LOG_FORMATS, type LogLevel, type LogFormat } from '../protocol/common/index.ts';
import { registerSimulateCommands } from '../simulations/cli.ts';
import { registerDatasetBuilderCommands } from '../simulations/dataset-commands.ts';
import { registerDataCommands } from '../site-agent/data/cli/index.ts';
import { registerCoordinatorCommands } from '../coordinator/index.ts';
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
    .showHelpAfterError()
    .addOption(new Option('--log-level <level>', 'log verbosity (also FEDSFDA_LOG_LEVEL)').choices(LOG_LEVELS))
    .addOption(new Option('--log-format <format>', 'pretty (default on a terminal) or json (one object per line)').choices(LOG_FORMATS))
    .hook('preAction', (_program, action) => {
      // Global options may come before or after the command name; read them from the action's view.
      const o = action.optsWithGlobals() as { logLevel?: LogLevel; logFormat?: LogFormat };
      setProcessLogger(createLogger({ level: o.logLevel, format: o.logFormat }));
    });
  registerSimulateCommands(program);
  registerDatasetBuilderCommands(registerDataCommands(program));
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
