/**
 * In-memory driver: runs every stage of one SecAgg+ round across n simulated sites in one process. Used by the
 * tests and the benchmark, and the reference for wiring the protocol into real rounds: for each stage the
 * coordinator sends `instructions.get(siteId)` to that site, the site answers with `session.handle(ins)`, the
 * coordinator calls `workflow.receive(reply)` for each reply that arrives before the stage deadline and then
 * `workflow.closeStage()`; after the unmask stage, `workflow.finish()` yields the sum.
 *
 * Sites are processed one at a time and the coordinator folds each masked vector into its running sum at once,
 * so peak memory is about two vectors plus per-site keys, whatever n is.
 */
import nacl from 'tweetnacl';
import { makeSecAggConfig, type SecAggConfig } from './config.ts';
import { SecAggError, isSecAggError } from './errors.ts';
import { SECAGG_STAGES, messageBytes, type SecAggInstruction, type SecAggReply, type SecAggStage } from './messages.ts';
import type { QuantConfig } from './quantize.ts';
import type { EnrolledIdentities } from './round-keys.ts';
import { SecAggServerWorkflow, type SecAggResult } from './server-workflow.ts';
import { SecAggSiteSession } from './site-session.ts';

export interface SimulatedSite {
  readonly siteId: string;
  readonly identity: nacl.SignKeyPair;
  /** Called once, when the site masks its vector (lazy so large simulations do not hold n vectors). */
  readonly input: () => Float32Array;
  /** Distributed DP: the site's integer noise share, added after quantization (SiteSessionOptions.addNoise). */
  readonly addNoise?: (quantized: Uint32Array) => void;
}

export interface RunSecAggOptions {
  readonly roundId?: string;
  readonly vectorLength: number;
  readonly quant: QuantConfig;
  readonly degree?: number;
  readonly threshold?: number;
  readonly roundSeed?: Uint8Array;
  /** Sites that go silent at the given stage: they do not reply to it, nor to anything later. */
  readonly dropouts?: Partial<Record<SecAggStage, readonly string[]>>;
  /** Enrolled identities the sites check against (default: every simulated site's identity public key). */
  readonly enrolled?: EnrolledIdentities;
  /**
   * Whether the simulated coordinator checks signatures itself (default true). Tests of a malicious coordinator
   * turn it off: only the sites' own checks stand between it and the data.
   */
  readonly coordinatorVerifies?: boolean;
  /** Sees every reply the coordinator receives (for "what does the coordinator learn" tests). */
  readonly onCoordinatorReceive?: (reply: SecAggReply) => void;
  /** Lets a test play a malicious coordinator: rewrite an instruction before it reaches `to`. */
  readonly tamper?: (to: string, ins: SecAggInstruction) => SecAggInstruction;
  /**
   * What a site's refusal does to the round: 'throw' (default) rethrows the first site error; 'drop' treats the
   * refusing site as dropped and lets the threshold decide.
   */
  readonly onSiteError?: 'throw' | 'drop';
}

export interface SecAggRoundReport extends SecAggResult {
  readonly config: SecAggConfig;
  /** Payload bytes each site sent / received over the whole round (`messageBytes`). */
  readonly bytesSent: ReadonlyMap<string, number>;
  readonly bytesReceived: ReadonlyMap<string, number>;
  /** Wall time per stage (ms), site work and coordinator work together (and hooks), plus the final unmasking. */
  readonly stageMs: Readonly<Record<SecAggStage | 'finish', number>>;
  /** Time each site spent in `handle` per stage (ms), hooks excluded. */
  readonly siteMs: ReadonlyMap<string, Readonly<Record<SecAggStage, number>>>;
  /** Time the coordinator spent in `receive` + `closeStage` per stage, and in `finish` (ms), hooks excluded. */
  readonly coordinatorMs: Readonly<Record<SecAggStage | 'finish', number>>;
  /** Site refusals observed with onSiteError = 'drop'. */
  readonly siteErrors: ReadonlyMap<string, SecAggError>;
}

/** Runs one complete round. Throws `SecAggError` (e.g. `below-threshold`) when the round aborts. */
export async function runSecAggRound(
  sites: readonly SimulatedSite[],
  opts: RunSecAggOptions,
): Promise<SecAggRoundReport> {
  const config = makeSecAggConfig({
    roundId: opts.roundId ?? `round-${Buffer.from(nacl.randomBytes(8)).toString('hex')}`,
    siteIds: sites.map((s) => s.siteId),
    vectorLength: opts.vectorLength,
    quant: opts.quant,
    degree: opts.degree,
    threshold: opts.threshold,
    roundSeed: opts.roundSeed,
  });
  const enrolled: EnrolledIdentities =
    opts.enrolled ?? new Map(sites.map((s) => [s.siteId, s.identity.publicKey] as const));
  const server = new SecAggServerWorkflow(config, opts.coordinatorVerifies === false ? undefined : enrolled);
  const sessions = new Map(
    sites.map((s) => [s.siteId, new SecAggSiteSession({ siteId: s.siteId, identity: s.identity, enrolled, input: s.input, ...(s.addNoise ? { addNoise: s.addNoise } : {}) })]),
  );
  const bytesSent = new Map(sites.map((s) => [s.siteId, 0]));
  const bytesReceived = new Map(sites.map((s) => [s.siteId, 0]));
  const siteErrors = new Map<string, SecAggError>();
  const silent = new Set<string>();
  const zeroStages = () => ({ setup: 0, 'share-keys': 0, 'collect-masked-vectors': 0, 'consistency-check': 0, unmask: 0 });
  const stageMs = { ...zeroStages(), finish: 0 };
  const coordinatorMs = { ...zeroStages(), finish: 0 };
  const siteMs = new Map(sites.map((s) => [s.siteId, zeroStages()]));

  const setup = server.setupInstruction();
  let instructions = new Map<string, SecAggInstruction>(sites.map((s) => [s.siteId, setup]));
  for (const stage of SECAGG_STAGES) {
    const t0 = performance.now();
    for (const id of opts.dropouts?.[stage] ?? []) silent.add(id);
    for (const [to, original] of instructions) {
      const ins = opts.tamper ? opts.tamper(to, original) : original;
      bytesReceived.set(to, bytesReceived.get(to)! + messageBytes(ins));
      if (silent.has(to)) continue;
      let reply: SecAggReply;
      const ts = performance.now();
      try {
        reply = await sessions.get(to)!.handle(ins);
        siteMs.get(to)![stage] += performance.now() - ts;
      } catch (e) {
        if (!isSecAggError(e) || (opts.onSiteError ?? 'throw') === 'throw') throw e;
        siteErrors.set(to, e);
        silent.add(to);
        continue;
      }
      bytesSent.set(to, bytesSent.get(to)! + messageBytes(reply));
      opts.onCoordinatorReceive?.(reply);
      const tc = performance.now();
      server.receive(reply);
      coordinatorMs[stage] += performance.now() - tc;
    }
    const tc = performance.now();
    instructions = server.closeStage();
    coordinatorMs[stage] += performance.now() - tc;
    stageMs[stage] = performance.now() - t0;
  }
  const t0 = performance.now();
  const result = await server.finish();
  stageMs.finish = performance.now() - t0;
  coordinatorMs.finish = stageMs.finish;
  return { ...result, config, bytesSent, bytesReceived, stageMs, siteMs, coordinatorMs, siteErrors };
}

/** Makes n simulated sites with fresh identity keys, ids `site-000`, `site-001`, ... */
export function makeSimulatedSites(n: number, input: (index: number) => Float32Array): SimulatedSite[] {
  return Array.from({ length: n }, (_, i) => ({
    siteId: `site-${String(i).padStart(3, '0')}`,
    identity: nacl.sign.keyPair(),
    input: () => input(i),
  }));
}
