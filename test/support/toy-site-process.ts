/**
 * Child process: one toy site (test/support/toy-trainer.ts) connected to a real coordinator, for cross-process
 * reliability tests. Logs (pino JSON) go to stderr; exit 0 when the coordinator said the run is finished, 1 when the
 * site gave up or was refused (the last log line says why).
 * Usage: toy-site-process.ts JSON  where JSON = { url, coordinatorKey, siteId, identityFile, seed, maxAttempts?,
 *   giveUpAfterMs?, initialDelayMs?, maxDelayMs?, failFit?, ca? }
 */
import { readFile } from 'node:fs/promises';
import { createLogger } from '../../protocol/common/index.ts';
import { loadIdentity } from '../../protocol/identity.ts';
import { runSite } from '../../site-agent/client/index.ts';
import { ToyTrainer, type ToySiteArgs } from './toy-trainer.ts';


async function main(): Promise<void> {
  const a = JSON.parse(process.argv[2]) as ToySiteArgs;
  const logger = createLogger({ format: 'json', level: 'debug' });
  const result = await runSite({
    url: a.url,
    identity: await loadIdentity(a.identityFile),
    coordinatorPublicKey: a.coordinatorKey,
    siteId: a.siteId,
    trainer: new ToyTrainer(a.seed, {
      failFit: a.failFit === true,
      ...(a.slowInRound !== undefined ? { slowInRound: a.slowInRound, slowMs: a.slowMs ?? 10_000 } : {}),
      ...(a.dieInRound !== undefined ? { dieInRound: a.dieInRound } : {}),
      ...(a.blockInRound !== undefined ? { blockInRound: a.blockInRound } : {}),
      ...(a.blockMs !== undefined ? { blockMs: a.blockMs } : {}),
      ...(a.blockStatistics ? { blockStatistics: true } : {}),
    }),
    logger,
    reconnect: { maxAttempts: a.maxAttempts ?? 200, initialDelayMs: a.initialDelayMs ?? 100, maxDelayMs: a.maxDelayMs ?? 1000 },
    ...(a.giveUpAfterMs !== undefined ? { giveUpAfterMs: a.giveUpAfterMs } : {}),
    ...(a.ca !== undefined ? { tlsCa: await readFile(a.ca, 'utf8') } : {}),
  });
  process.stdout.write(`${JSON.stringify({ event: 'done', ...result })}\n`);
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    process.stdout.write(`${JSON.stringify({ event: 'error', message: err instanceof Error ? err.message : String(err) })}\n`);
    process.exit(1);
  },
);
