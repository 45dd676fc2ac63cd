/**
 * The `fedsfda` command line. Each subsystem contributes its commands through a `register*Commands`
 * function so that this file stays a table of contents.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { createLogger, setProcessLogger, LOG_LEVELS, LOG_FORMATS, type LogLevel, type LogFormat } from '../protocol/common/index.ts';
import { registerSimulateCommands } from '../simulations/cli.ts';
import { registerDatasetBuilderCommands } from '../simulations/dataset-commands.ts';
import { registerDataCommands } from '../site-agent/data/cli/index.ts';
import { registerCoordinatorCommands } from '../coordinator/cli.ts';
import { registerProvisionCommands } from '../coordinator/provision/provision-commands.ts';
import { registerEngineCommands } from '../site-agent/engine/index.ts';
import { registerModelCommands } from '../site-agent/model/cli.ts';
import { registerAdaptCommands } from '../site-agent/adapt/adapt-command.ts';
import { registerSiteCommands } from '../site-agent/cli/index.ts';
import { registerPrivacyCommands } from '../protocol/privacy/index.ts';

/** The package's own version (package.json next to this folder, wherever the package is installed). */
export function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The command's name as typed, e.g. `fedsfda site audit`. */
function fullName(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c; c = c.parent) names.unshift(c.name());
  return names.join(' ');
}

/**
 * After a usage error (unknown command or option, missing argument) print one hint line instead of the whole help:
 * commander's own message already names the error and, for a mistyped command, the closest one ("Did you mean").
 */
function shortHintsAfterErrors(cmd: Command): void {
  cmd.showHelpAfterError(`(run \`${fullName(cmd)} --help\` for usage)`);
  for (const sub of cmd.commands) shortHintsAfterErrors(sub);
}

export async function main(argv: string[]): Promise<void> {
  const program = new Command();
  program
    .name('fedsfda')
    .description('Federated, privacy-preserving medical image segmentation with source-free domain adaptation')
    .version(packageVersion(), '-V, --version', 'print the fedsfda version')
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
  registerProvisionCommands(program);
  registerEngineCommands(program);
  registerModelCommands(program);
  registerAdaptCommands(program);
  registerSiteCommands(program);
  registerPrivacyCommands(program);
  shortHintsAfterErrors(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    const e = err as Error & { code?: string };
    console.error(`fedsfda: ${e.code ? `[${e.code}] ` : ''}${e.message}`);
    process.exitCode = 1;
  }
}
