/**
 * The `fedsfda` command line. Each subsystem contributes its commands through a `register*Commands`
 * function so that this file stays a table of contents. Only the group of the command being run is loaded
 * (`fedsfda enroll list` does not load tfjs, express or socket.io): every invocation starts in a fraction of the time.
 */
import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { createLogger, getLogger, setProcessLogger, LOG_LEVELS, LOG_FORMATS, type LogLevel, type LogFormat } from '../protocol/common/index.ts';

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

/** A subsystem's top-level commands and how to register them (loaded only when one of them runs, or for help). */
export interface CommandGroup {
  readonly names: readonly string[];
  register(program: Command): Promise<void>;
}

/** Every top-level command, in help order. test/cli-ergonomics.test.ts checks `names` against what each registers. */
export const COMMAND_GROUPS: readonly CommandGroup[] = [
  { names: ['simulate'], register: async (p) => (await import('../simulations/cli.ts')).registerSimulateCommands(p) },
  {
    names: ['data'],
    register: async (p) => {
      const { registerDataCommands } = await import('../site-agent/data/cli/index.ts');
      const { registerDatasetBuilderCommands } = await import('../simulations/dataset-commands.ts');
      registerDatasetBuilderCommands(registerDataCommands(p));
    },
  },
  { names: ['identity', 'coordinator'], register: async (p) => (await import('../coordinator/index.ts')).registerCoordinatorCommands(p) },
  { names: ['consortium', 'enroll'], register: async (p) => (await import('../coordinator/provision/provision-commands.ts')).registerProvisionCommands(p) },
  { names: ['doctor', 'bench'], register: async (p) => (await import('../site-agent/engine/index.ts')).registerEngineCommands(p) },
  { names: ['model'], register: async (p) => (await import('../site-agent/model/cli.ts')).registerModelCommands(p) },
  { names: ['adapt', 'source-stats'], register: async (p) => (await import('../site-agent/adapt/adapt-command.ts')).registerAdaptCommands(p) },
  { names: ['site'], register: async (p) => (await import('../site-agent/cli/index.ts')).registerSiteCommands(p) },
  { names: ['privacy'], register: async (p) => (await import('../protocol/privacy/index.ts')).registerPrivacyCommands(p) },
];

/** Global options that take a value (their value is not the command name). */
const GLOBAL_OPTIONS_WITH_VALUE = new Set(['--log-level', '--log-format']);

/**
 * The groups to load for `argv`: the command's own; none for a bare `--version`; all of them otherwise (no command,
 * `help`, `--help`, a mistyped name, which gets a did-you-mean over every command).
 */
export function groupsFor(argv: readonly string[]): readonly CommandGroup[] {
  const args = argv.slice(2);
  const bareVersion = args.some((a) => a === '-V' || a === '--version');
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === '--') break;
    if (a.startsWith('-')) {
      if (GLOBAL_OPTIONS_WITH_VALUE.has(a)) i++;
      continue;
    }
    const group = COMMAND_GROUPS.find((g) => g.names.includes(a));
    return group ? [group] : COMMAND_GROUPS;
  }
  return bareVersion ? [] : COMMAND_GROUPS;
}

/**
 * A command that failed: one log line with timestamp, level and typed code (the operator's grep), and, when stderr
 * is not a terminal (CI logs, pipes: the log line is JSON there), the message once more as plain text for a human.
 */
function reportFailure(err: unknown): void {
  const e: Error & { code?: unknown } = err instanceof Error ? err : new Error(String(err));
  const code = typeof e.code === 'string' && e.code !== '' ? e.code : 'command_failed';
  try {
    getLogger().error({ code, error: e.name }, e.message);
  } catch {
    // No logger (e.g. a bad FEDSFDA_LOG_LEVEL): the plain line below still says what failed.
  }
  if (process.stderr.isTTY !== true) console.error(`fedsfda: [${code}] ${e.message}`);
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
  for (const group of groupsFor(argv)) await group.register(program);
  shortHintsAfterErrors(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    reportFailure(err);
    process.exitCode = 1;
  }
}
