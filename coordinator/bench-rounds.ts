/**
 * Round overhead benchmark: a coordinator and S in-process sites over real socket.io on loopback, a model of M MB,
 * a trivial trainer (adds a constant), R rounds. Reports wall time per round (protocol + crypto + aggregation
 * cost, no training) and bytes on the wire per site per round against the ideal of 2 + 1/R model copies
 * (round 1: fit download, update upload, evaluate download; later rounds reuse the evaluated model by content id,
 * so only the upload and the evaluate download remain).
 * Run: npx tsx coordinator/bench-rounds.ts [MEGABYTES=4] [SITES=2] [ROUNDS=3]
 * Everything shares one process and the machine's cores: numbers are an upper bound on the overhead and noisy.
 */
import { Enrollment } from '../protocol/enrollment.ts';
import { generateIdentity } from '../protocol/identity.ts';
import type { WeightSet } from '../protocol/named-tensor.ts';
import { encodedSize } from '../protocol/tensor-codec.ts';
import { runSite } from '../site-agent/client/run-site.ts';
import { startCoordinator } from './start-coordinator.ts';

async function main(): Promise<void> {
  const megabytes = Number(process.argv[2] ?? 4);
  const sites = Number(process.argv[3] ?? 2);
  const rounds = Number(process.argv[4] ?? 3);
  const elems = Math.floor((megabytes * 1024 * 1024) / 4);
  const initial: WeightSet = [{ name: 'w', shape: [elems], data: new Float32Array(elems) }];
  const modelBytes = encodedSize(initial);
  const enrollment = new Enrollment();
  const ids = Array.from({ length: sites }, (_, i) => ({ id: `site-${i}`, identity: generateIdentity() }));
  for (const s of ids) enrollment.allow(s.id, s.identity.publicKey);
  const coord = await startCoordinator({ identity: generateIdentity(), enrollment, initialWeights: initial, rounds, minSites: sites, port: 0 });
  const times: number[] = [];
  let t = 0;
  coord.events.on('roundStarted', () => (t = performance.now()));
  coord.events.on('roundCompleted', () => times.push(performance.now() - t));
  const results = await Promise.all([
    ...ids.map((s) =>
      runSite({
        url: coord.url,
        identity: s.identity,
        coordinatorPublicKey: coord.publicKey,
        siteId: s.id,
        trainer: {
          fit: async (g) => ({ weights: g.map((x) => ({ ...x, data: x.data.map((v) => v + 1) })), numExamples: 1, metrics: { trainLoss: 0 } }),
          evaluate: async () => ({ numExamples: 1, metrics: { dice: 0 } }),
        },
      }),
    ),
    coord.done,
  ]);
  await coord.close();
  const siteResults = results.slice(0, sites) as Awaited<ReturnType<typeof runSite>>[];
  const perSiteRound = siteResults.reduce((a, r) => a + r.bytesSent + r.bytesReceived, 0) / sites / rounds;
  console.log(`model ${(modelBytes / 1024 / 1024).toFixed(2)} MB, ${sites} sites, ${rounds} rounds`);
  console.log(`round wall time ms: ${times.map((x) => x.toFixed(0)).join(', ')}`);
  const ideal = 2 + 1 / rounds;
  console.log(`bytes per site per round: ${(perSiteRound / 1024 / 1024).toFixed(2)} MB = ${(perSiteRound / modelBytes).toFixed(3)} model copies (ideal ${ideal.toFixed(3)}: overhead ${((perSiteRound / modelBytes / ideal - 1) * 100).toFixed(2)}%)`);
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
