/**
 * CLI commands of the federation's server side:
 *   fedsfda identity new --out FILE         create an Ed25519 identity file (prints the public key)
 *   fedsfda identity show FILE              print an identity file's public key
 *   fedsfda identity peers ENROLL --out F   the allow-list's public keys without tokens (for sites' --peers)
 *   fedsfda coordinator --identity FILE --enroll FILE --init-weights FILE [--config FILE] [--out DIR] [flags]
 * The coordinator runs its rounds, prints one line per round, and exits. With --out it leaves the run's artifacts
 * there (storage/run-artifacts.ts): history.json, final-weights.fsws and, with a `statistics` config block, the pooled
 * source statistics and the non-IID report computed by masked-sum statistics rounds after the last round.
 * TLS: --tls-cert/--tls-key (or config `tls`); REST token: environment variable FEDSFDA_REST_TOKEN (>= 16 chars).
 */
import type { Command } from 'commander';
import { Enrollment, generateIdentity, loadIdentity, publicKeyToString, saveIdentity } from '../../protocol/index.ts';
import { getLogger, writeFileAtomic } from '../../protocol/common/index.ts';
import { CoordinatorError } from '../errors/index.ts';
import { completedRun } from '../storage/index.ts';
import { STRATEGY_NAMES } from '../strategies/index.ts';
import { installProcessGuards } from './process-guard.ts';
import { startCoordinatorFromFiles, type CoordinatorCommandOptions } from './start-from-files.ts';

export function registerCoordinatorCommands(program: Command): void {
  const identity = program.command('identity').description('Ed25519 identity files for sites and coordinators');
  identity
    .command('new')
    .description('create a new identity file (owner-only permissions) and print its public key')
    .requiredOption('--out <file>', 'where to write the identity JSON')
    .action(async (o: { out: string }) => {
      const id = generateIdentity();
      await saveIdentity(o.out, id);
      console.log(publicKeyToString(id.publicKey));
    });
  identity
    .command('show <file>')
    .description('print the public key of an identity file')
    .action(async (file: string) => {
      console.log(publicKeyToString((await loadIdentity(file)).publicKey));
    });
  identity
    .command('peers <enroll-file>')
    .description("the allow-list's public keys without enrollment tokens: the file every site gets for `fedsfda site --peers`")
    .requiredOption('--out <file>', 'where to write the peers file')
    .action(async (file: string, o: { out: string }) => {
      const e = await Enrollment.load(file);
      if (e.siteIds().length === 0) throw new CoordinatorError('bad_options', `${file} lists no sites with keys yet (enroll them first)`);
      await writeFileAtomic(o.out, JSON.stringify({ v: 1, sites: e.toJSON().sites }, null, 2) + '\n');
      console.log(`${e.siteIds().length} site key(s) -> ${o.out}`);
    });

  program
    .command('coordinator')
    .description('run the federated coordinator (express + socket.io on one port) until all rounds are done')
    .requiredOption('--identity <file>', 'coordinator identity file (fedsfda identity new)')
    .requiredOption('--enroll <file>', 'enrollment JSON: {"v":1,"sites":{"site-id":"<base64 public key>"},"tokens":[{"token":"..."}]}')
    .requiredOption('--init-weights <file>', 'initial global model as an encoded WeightSet (protocol/tensor-codec.ts)')
    .option('--config <file>', 'JSON config (rounds, minSites, host, port, checkpointDir, strategy, timeouts)')
    .option('--port <n>', 'port (0 = ephemeral)')
    .option('--host <addr>', 'bind address')
    .option('--rounds <n>', 'number of rounds')
    .option('--min-sites <n>', 'sites needed to start a round and to aggregate')
    .option('--strategy <name>', `one of ${STRATEGY_NAMES.join(', ')}`)
    .option('--checkpoint-dir <dir>', 'checkpoint directory (resumed if it holds a checkpoint)')
    .option('--max-site-bytes-per-round <n>', 'bytes one site may send per round (config limits.maxSiteBytesPerRound; default 4 x the model + 16 MiB)')
    .option('--history-out <file>', 'write the round history JSON here at the end')
    .option('--out <dir>', 'run folder: history.json, final-weights.fsws, and the statistics configured under "statistics"')
    .option('--tls-cert <file>', 'serve HTTPS/WSS with this PEM certificate chain (with --tls-key)')
    .option('--tls-key <file>', 'PEM private key of --tls-cert')
    .option('--rest-token-file <file>', 'REST/dashboard bearer token from this (owner-only) file instead of FEDSFDA_REST_TOKEN')
    .option('--serve-after', 'keep serving the REST API and dashboard after the last round, until SIGINT/SIGTERM')
    .action(runCoordinatorCommand);
}

/**
 * The coordinator process: run the rounds, write the history, exit 0 only when the run trained (or was stopped on
 * purpose by SIGINT/SIGTERM: the checkpoint holds it). Connection errors nobody caught are survived; any other
 * uncaught error stops the process with code 70 for its supervisor (cli/process-guard.ts).
 */
async function runCoordinatorCommand(o: CoordinatorCommandOptions): Promise<void> {
  const logger = getLogger().child({ component: 'coordinator' });
  let handle: Awaited<ReturnType<typeof startCoordinatorFromFiles>> | null = null;
  let stoppedBy: string | null = null;
  let stopRequested: () => void = () => {};
  const stopped = new Promise<void>((r) => (stopRequested = r));
  const stop = (signal: string): void => {
    stoppedBy = signal;
    stopRequested();
    logger.info({ code: 'stopping', signal }, `stopping on ${signal}`);
    if (handle !== null) void handle.close();
  };
  const onInt = (): void => stop('SIGINT');
  const onTerm = (): void => stop('SIGTERM');
  // Installed before start-up: a signal that arrives between the "listening"/"dashboard" lines and the end of
  // start-up (a supervisor or a test reacting to those lines) is a deliberate stop too, not the default kill.
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  let uninstallGuards = (): void => {};
  try {
    handle = await startCoordinatorFromFiles(o);
    const started = handle;
    uninstallGuards = installProcessGuards(logger, { onSurvived: (code) => started.metrics.survivedErrors.inc({ code }) });
    if (stoppedBy !== null) void handle.close();
    const history = await handle.done.catch((e: unknown) => {
      if (stoppedBy !== null) return null; // a deliberate stop: the checkpoint holds the run, exit 0
      throw e;
    });
    if (history === null) {
      console.log(`stopped by ${stoppedBy} after round ${handle.history().filter((r) => r.round > 0).length}; restart with the same checkpoint directory to resume`);
      return;
    }
    if (o.historyOut) await writeFileAtomic(o.historyOut, JSON.stringify(history, null, 2));
    // With --out, history.json was written with the other artifacts before the sites were released (run.json last):
    // writing it again here, after the sites left, would leave a torn temp file behind a kill at this point. Exit 0
    // promises a complete folder; one the artifact step could not finish (its error is logged) is a failure.
    if (o.out && !(await completedRun(o.out, history.at(-1)?.round ?? 0))) {
      console.error(`run folder ${o.out} is incomplete (no run.json naming every file): see the after_rounds_failed log line`);
      process.exitCode = 1;
      return;
    }
    const outcome = handle.outcome();
    if (outcome && !outcome.ok) {
      console.error(`run failed: ${outcome.reason}`);
      process.exitCode = 1;
      return;
    }
    console.log(`finished ${history.filter((r) => r.round > 0).length} round(s)`);
    if (o.serveAfter) {
      console.log(`still serving ${handle.url} (--serve-after); stop with Ctrl-C or SIGTERM`);
      await stopped;
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    await handle?.close();
    uninstallGuards();
  }
}
