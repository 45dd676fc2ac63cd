/**
 * Round overhead benchmark: a coordinator and S in-process sites over real socket.io on loopback, a model of M MB,
 * a trainer that does no training (adds a constant), R rounds. Reports wall time per round (protocol + crypto +
 * aggregation cost, no training) and bytes on the wire per site per round against the ideal of 2 + 1/R model copies
 * (round 1: fit download, update upload, evaluate download; later rounds reuse the evaluated model by content id,
 * so only the upload and the evaluate download remain).
 * Run: npx tsx simulations/benchmarks/bench-rounds.ts [MEGABYTES=4] [SITES=2] [ROUNDS=3]
 * Everything shares one process and the machine's cores: numbers are an upper bound on the overhead and noisy.
 * `runNoTrainingRounds` is also the "live" layer of scripts/bench-secagg.ts (plain vs secure rounds).
 */
import { pathToFileURL } from 'node:url';
import { Enrollment, encodedSize, generateIdentity, type WeightSet } from '../../protocol/index.ts';
import { runSite, type SiteRunResult } from '../../site-agent/client/index.ts';
import type { SecureAggregationOptions } from '../../coordinator/index.ts';
import { startCoordinator } from '../../coordinator/index.ts';

export interface NoTrainingRun {
  /** Wall time of each round (roundStarted -> roundCompleted), ms. */
  roundMs: number[];
  /** Wall time of each round's fit phase (stage fit -> stage evaluate), ms. */
  fitMs: number[];
  sites: SiteRunResult[];
  modelBytes: number;
}

/** n in-process sites whose "training" adds 0.001 * (i + 1) to every weight (site i reports 10 + i examples). */
export async function runNoTrainingRounds(opts: { params: number; sites: number; rounds: number; secure?: SecureAggregationOptions }): Promise<NoTrainingRun> {
  const initial: WeightSet = [{ name: 'w', shape: [opts.params], data: new Float32Array(opts.params) }];
  const enrollment = new Enrollment();
  const ids = Array.from({ length: opts.sites }, (_, i) => ({ id: `site-${i}`, identity: generateIdentity() }));
  for (const s of ids) enrollment.allow(s.id, s.identity.publicKey);
  const coord = await startCoordinator({
    identity: generateIdentity(),
    enrollment,
    initialWeights: initial,
    rounds: opts.rounds,
    minSites: opts.sites,
    port: 0,
    ...(opts.secure ? { secureAggregation: opts.secure } : {}),
  });
  const roundMs: number[] = [];
  const fitMs: number[] = [];
  let roundStart = 0;
  let fitStart = 0;
  coord.events.on('roundStarted', () => (roundStart = performance.now()));
  coord.events.on('stage', (stage: string) => {
    if (stage === 'fit') fitStart = performance.now();
    if (stage === 'evaluate') fitMs.push(performance.now() - fitStart);
  });
  coord.events.on('roundCompleted', () => roundMs.push(performance.now() - roundStart));
  try {
    const results = await Promise.all([
      ...ids.map((s, i) =>
        runSite({
          url: coord.url,
          identity: s.identity,
          coordinatorPublicKey: coord.publicKey,
          siteId: s.id,
          trainer: {
            fit: async (g) => ({
              weights: g.map((x) => ({ ...x, data: x.data.map((v) => v + 0.001 * (i + 1)) })),
              numExamples: 10 + i,
              metrics: { trainLoss: 0 },
            }),
            evaluate: async () => ({ numExamples: 1, metrics: { dice: 0 } }),
          },
        }),
      ),
      coord.done,
    ]);
    return { roundMs, fitMs, sites: results.slice(0, opts.sites) as SiteRunResult[], modelBytes: encodedSize(initial) };
  } finally {
    await coord.close();
  }
}

async function main(): Promise<void> {
  const megabytes = Number(process.argv[2] ?? 4);
  const sites = Number(process.argv[3] ?? 2);
  const rounds = Number(process.argv[4] ?? 3);
  const r = await runNoTrainingRounds({ params: Math.floor((megabytes * 1024 * 1024) / 4), sites, rounds });
  const perSiteRound = r.sites.reduce((a, s) => a + s.bytesSent + s.bytesReceived, 0) / sites / rounds;
  console.log(`model ${(r.modelBytes / 1024 / 1024).toFixed(2)} MB, ${sites} sites, ${rounds} rounds`);
  console.log(`round wall time ms: ${r.roundMs.map((x) => x.toFixed(0)).join(', ')}`);
  const ideal = 2 + 1 / rounds;
  console.log(`bytes per site per round: ${(perSiteRound / 1024 / 1024).toFixed(2)} MB = ${(perSiteRound / r.modelBytes).toFixed(3)} model copies (ideal ${ideal.toFixed(3)}: overhead ${((perSiteRound / r.modelBytes / ideal - 1) * 100).toFixed(2)}%)`);
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main().catch((e) => {
    console.error(e);
    process.exit(1);
  });
}
