/**
 * Coordinator side of SecAgg+ (the workflow that wraps a strategy): it relays keys and share boxes, adds masked
 * vectors into one running sum as they arrive (so memory stays one vector whatever n is), and at the end removes
 * the masks from shares. Stages are an explicit state machine; `closeStage()` checks the transition (enough
 * responders, right stage) before it runs. Bonawitz et al., CCS 2017, Fig. 4 (server side, including the round-3
 * consistency check); Bell et al., CCS 2020, Sec. 3.2 (neighbourhoods).
 *
 * It sees: signed public keys, share ciphertexts, masked vectors, and — in the unmask stage — exactly one kind of
 * share per (holder, peer). It never sees any site's unmasked vector.
 */
import { bytesEqual, isBytes } from './bytes.ts';
import { validateSecAggConfig, type SecAggConfig } from './config.ts';
import { survivorsMessage, type SurvivorSignature } from './consistency.ts';
import { ed25519Verify, x25519Base } from './curves.ts';
import { SecAggError } from './errors.ts';
import { parseSecAggReply } from './schemas.ts';
import { PAIRWISE_MASK_NONCE, SELF_MASK_NONCE, pairwiseSeed, pairwiseSign } from './kdf.ts';
import { applyKeystreams, type MaskTerm } from './keystream.ts';
import { foldInto } from './u32-simd.ts';
import {
  SECAGG_VERSION,
  stageOf,
  type AdvertiseKeysRes,
  type CollectIns,
  type SecAggInstruction,
  type SecAggReply,
  type SecAggStage,
  type SetupIns,
  type UnmaskSharesRes,
} from './messages.ts';
import { neighbourGraph } from './neighbours.ts';
import { dequantizeSum } from './quantize.ts';
import { verifyRoundKeys, type EnrolledIdentities, type SignedRoundKeys } from './round-keys.ts';
import { combineShares } from './share-box.ts';

export type ServerState = SecAggStage | 'finished' | 'aborted';

export interface SecAggResult {
  /** Dequantized sum of the inputs of `included` sites. */
  readonly sum: Float32Array;
  /** U3: sites whose vectors are in the sum. */
  readonly included: readonly string[];
  /** Selected sites whose vectors are not in the sum. */
  readonly excluded: readonly string[];
}

const NEXT: Record<SecAggStage, ServerState> = {
  setup: 'share-keys',
  'share-keys': 'collect-masked-vectors',
  'collect-masked-vectors': 'consistency-check',
  'consistency-check': 'unmask',
  unmask: 'finished',
};

export class SecAggServerWorkflow {
  private state: ServerState = 'setup';
  private readonly graph: Map<string, string[]>;
  private readonly index = new Map<string, number>();
  /** Who responded in each stage: U1 (setup), U2 (share-keys), U3 (masked vector), U4 (signed U3), U5 (unmask). */
  private readonly responded: Record<SecAggStage, Set<string>> = {
    setup: new Set(),
    'share-keys': new Set(),
    'collect-masked-vectors': new Set(),
    'consistency-check': new Set(),
    unmask: new Set(),
  };
  private survivorList: string[] = [];
  private droppedList: string[] = [];
  private readonly survivorSignatures: SurvivorSignature[] = [];
  private readonly keys = new Map<string, SignedRoundKeys>();
  /** Boxes waiting for their recipient: to -> [{from, ciphertext}]. */
  private readonly mailbox = new Map<string, { from: string; ciphertext: Uint8Array }[]>();
  private readonly sum: Uint32Array;
  private readonly unmaskReplies: UnmaskSharesRes[] = [];
  private abortReason: SecAggError | undefined;

  /**
   * @param config the round's public parameters (what `SetupIns` carries).
   * @param enrolled optional: when given, the coordinator also refuses unsigned keys up front (sites check anyway).
   */
  constructor(
    readonly config: SecAggConfig,
    private readonly enrolled?: EnrolledIdentities,
  ) {
    validateSecAggConfig(config);
    this.graph = neighbourGraph(config.siteIds, config.degree, config.roundSeed);
    config.siteIds.forEach((s, i) => this.index.set(s, i));
    this.sum = new Uint32Array(config.vectorLength);
  }

  get currentState(): ServerState {
    return this.state;
  }

  get error(): SecAggError | undefined {
    return this.abortReason;
  }

  /** Sites that responded in a stage so far. */
  responders(stage: SecAggStage): readonly string[] {
    return [...this.responded[stage]];
  }

  neighboursOf(siteId: string): readonly string[] {
    return this.graph.get(siteId) ?? [];
  }

  /** The setup instruction, identical for every selected site. */
  setupInstruction(): SetupIns {
    this.expectState('setup');
    return { type: 'secagg/setup', version: SECAGG_VERSION, config: this.config };
  }

  /**
   * Accepts one site's reply for the current stage. A bad reply is refused with a `SecAggError` and does not
   * change the round (the site just counts as not responded); it never aborts the round by itself.
   */
  receive(reply: SecAggReply): void {
    try {
      this.receiveChecked(parseSecAggReply(reply));
    } catch (e) {
      if (e instanceof SecAggError) throw e;
      throw new SecAggError('malformed-message', `reply could not be processed: ${(e as Error).message}`);
    }
  }

  private receiveChecked(reply: SecAggReply): void {
    this.expectState(stageOf(reply));
    if (reply.version !== SECAGG_VERSION) throw new SecAggError('malformed-message', `unsupported version ${reply.version}`);
    if (reply.roundId !== this.config.roundId) {
      throw new SecAggError('malformed-message', `reply for round "${reply.roundId}", expected "${this.config.roundId}"`);
    }
    const from = reply.siteId;
    if (!this.index.has(from)) throw new SecAggError('unknown-site', `"${from}" is not selected for this round`);
    const stage = stageOf(reply);
    if (this.responded[stage].has(from)) throw new SecAggError('malformed-message', `second ${stage} reply from "${from}"`);
    if (stage !== 'setup' && !this.wasIn(previousStage(stage), from)) {
      throw new SecAggError('wrong-stage', `"${from}" did not complete the previous stage`);
    }
    switch (reply.type) {
      case 'secagg/advertise-keys':
        this.onKeys(reply);
        break;
      case 'secagg/encrypted-shares': {
        const allowed = new Set(this.graph.get(from)!.filter((j) => this.responded.setup.has(j)));
        const seen = new Set<string>();
        for (const s of reply.shares) {
          if (!allowed.has(s.to) || seen.has(s.to) || !isBytes(s.ciphertext)) {
            throw new SecAggError('malformed-message', `"${from}" addressed a share to "${s.to}", not a distinct U1 neighbour`);
          }
          seen.add(s.to);
        }
        for (const s of reply.shares) {
          const box = this.mailbox.get(s.to) ?? [];
          box.push({ from, ciphertext: s.ciphertext });
          this.mailbox.set(s.to, box);
        }
        break;
      }
      case 'secagg/masked-vector': {
        const m = reply.masked;
        if (!(m instanceof Uint32Array) || m.length !== this.config.vectorLength) {
          throw new SecAggError('malformed-message', `masked vector of "${from}" must be a Uint32Array of ${this.config.vectorLength}`);
        }
        // Accumulate immediately (mod 2^32, SIMD when available); the individual vector is not kept.
        foldInto(this.sum, m, 1);
        break;
      }
      case 'secagg/survivors-signature': {
        const pk = this.enrolled?.get(from);
        if (pk && !ed25519Verify(survivorsMessage(this.config.roundId, this.survivorList), reply.signature, pk)) {
          throw new SecAggError('bad-signature', `survivor-set signature of "${from}" does not verify`);
        }
        if (!isBytes(reply.signature, 64)) throw new SecAggError('malformed-message', `signature of "${from}" is not 64 bytes`);
        this.survivorSignatures.push({ siteId: from, signature: reply.signature });
        break;
      }
      case 'secagg/unmask-shares': {
        // Each share must come from a neighbour of the site it belongs to, once per peer and of one kind only.
        const mine = new Set(this.graph.get(from)!);
        const seen = new Set<string>();
        for (const s of [...reply.selfMaskShares, ...reply.maskKeyShares]) {
          if (!mine.has(s.of) || seen.has(s.of) || !isBytes(s.share)) {
            throw new SecAggError('malformed-message', `"${from}" revealed a share of "${s.of}" it cannot hold, or twice`);
          }
          seen.add(s.of);
        }
        this.unmaskReplies.push(reply);
        break;
      }
      default: {
        const never: never = reply;
        throw new SecAggError('malformed-message', `unknown reply ${(never as { type: string }).type}`);
      }
    }
    this.responded[stage].add(from);
  }

  private onKeys(reply: AdvertiseKeysRes): void {
    if (!isBytes(reply.maskPublicKey, 32) || !isBytes(reply.sharePublicKey, 32) || !isBytes(reply.signature, 64)) {
      throw new SecAggError('malformed-message', `keys of "${reply.siteId}" have wrong lengths`);
    }
    if (this.enrolled) verifyRoundKeys(this.config.roundId, reply, this.enrolled);
    const { siteId, maskPublicKey, sharePublicKey, signature } = reply;
    this.keys.set(siteId, { siteId, maskPublicKey, sharePublicKey, signature });
  }

  private wasIn(stage: SecAggStage, siteId: string): boolean {
    return this.responded[stage].has(siteId);
  }

  private expectState(expected: ServerState): void {
    if (this.state === 'aborted') throw new SecAggError('aborted', `round aborted: ${this.abortReason?.message}`);
    if (this.state !== expected) throw new SecAggError('wrong-stage', `coordinator is in ${this.state}, not ${expected}`);
  }

  private abort(e: SecAggError): SecAggError {
    this.state = 'aborted';
    this.abortReason = e;
    this.sum.fill(0);
    this.mailbox.clear();
    return e;
  }

  private requireAtLeast(count: number, what: string): void {
    if (count < this.config.threshold) {
      throw this.abort(new SecAggError('below-threshold', `${count} ${what}, threshold is ${this.config.threshold}`));
    }
  }

  /**
   * Closes the current stage (sites that did not reply are dropouts), checks the transition, and returns the next
   * stage's instruction per recipient. Closing `unmask` returns an empty map; call `finish()` afterwards.
   */
  closeStage(): Map<string, SecAggInstruction> {
    if (this.state === 'aborted' || this.state === 'finished') this.expectState('setup');
    const stage = this.state as SecAggStage;
    const out = new Map<string, SecAggInstruction>();
    const roundId = this.config.roundId;
    switch (stage) {
      case 'setup': {
        const u1 = this.responded.setup;
        this.requireAtLeast(u1.size, 'sites advertised keys');
        for (const i of u1) {
          const keys = this.graph.get(i)!.filter((j) => u1.has(j)).map((j) => this.keys.get(j)!);
          out.set(i, { type: 'secagg/share-keys', version: SECAGG_VERSION, roundId, keys });
        }
        break;
      }
      case 'share-keys': {
        const u2 = this.responded['share-keys'];
        this.requireAtLeast(u2.size, 'sites sent shares');
        for (const j of u2) {
          const ciphertexts = (this.mailbox.get(j) ?? []).filter((c) => u2.has(c.from));
          const ins: CollectIns = { type: 'secagg/collect-masked-vectors', version: SECAGG_VERSION, roundId, ciphertexts };
          out.set(j, ins);
        }
        this.mailbox.clear();
        break;
      }
      case 'collect-masked-vectors': {
        const u3 = this.responded['collect-masked-vectors'];
        this.requireAtLeast(u3.size, 'masked vectors arrived');
        this.survivorList = [...u3];
        this.droppedList = [...this.responded['share-keys']].filter((s) => !u3.has(s));
        for (const i of u3) {
          out.set(i, {
            type: 'secagg/consistency-check',
            version: SECAGG_VERSION,
            roundId,
            survivors: this.survivorList,
            dropped: this.droppedList,
          });
        }
        break;
      }
      case 'consistency-check': {
        const u4 = this.responded['consistency-check'];
        this.requireAtLeast(u4.size, 'survivors signed the survivor set');
        const signatures = [...this.survivorSignatures];
        for (const i of u4) {
          out.set(i, {
            type: 'secagg/unmask',
            version: SECAGG_VERSION,
            roundId,
            survivors: this.survivorList,
            dropped: this.droppedList,
            signatures,
          });
        }
        break;
      }
      case 'unmask':
        this.requireAtLeast(this.responded.unmask.size, 'sites sent unmask shares');
        break;
      default: {
        const never: never = stage;
        throw new SecAggError('wrong-stage', `unknown stage ${String(never)}`);
      }
    }
    this.state = NEXT[stage];
    return out;
  }

  /**
   * Removes the masks and returns the dequantized sum. All secrets are reconstructed and checked BEFORE the sum is
   * touched; if any needed secret has fewer than t shares the round aborts (`below-threshold`) and no sum is
   * returned. Bonawitz et al. Sec. 4 round 4: z = sum_{U3} y_u - sum_{U3} PRG(b_u)
   *   + sum_{u in U2\U3, v in U3 cap N(u)} gamma_{v,u} PRG(s_{v,u}).
   */
  async finish(): Promise<SecAggResult> {
    this.expectState('finished');
    const cfg = this.config;
    const u2 = this.responded['share-keys'];
    const u3 = this.responded['collect-masked-vectors'];
    const seedShares = new Map<string, Uint8Array[]>();
    const keyShares = new Map<string, Uint8Array[]>();
    for (const r of this.unmaskReplies) {
      for (const s of r.selfMaskShares) {
        if (u3.has(s.of) && isBytes(s.share)) seedShares.set(s.of, [...(seedShares.get(s.of) ?? []), s.share]);
      }
      for (const s of r.maskKeyShares) {
        if (u2.has(s.of) && !u3.has(s.of) && isBytes(s.share)) keyShares.set(s.of, [...(keyShares.get(s.of) ?? []), s.share]);
      }
    }
    const dropped = [...u2].filter((s) => !u3.has(s));
    for (const i of u3) this.requireAtLeast(seedShares.get(i)?.length ?? 0, `self-mask shares of "${i}"`);
    for (const i of dropped) this.requireAtLeast(keyShares.get(i)?.length ?? 0, `mask-key shares of dropped "${i}"`);

    const seeds = new Map<string, Uint8Array>();
    const maskKeys = new Map<string, Uint8Array>();
    try {
      for (const i of u3) seeds.set(i, await combineShares(seedShares.get(i)!, cfg.threshold));
      for (const i of dropped) {
        const sk = await combineShares(keyShares.get(i)!, cfg.threshold);
        // A wrong share would give a wrong key and a garbage sum; the advertised public key tells us.
        if (!bytesEqual(x25519Base(sk), this.keys.get(i)!.maskPublicKey)) {
          throw new SecAggError('bad-ciphertext', `reconstructed mask key of "${i}" does not match its public key`);
        }
        maskKeys.set(i, sk);
      }
    } catch (e) {
      throw this.abort(e instanceof SecAggError ? e : new SecAggError('bad-ciphertext', (e as Error).message));
    }

    const sum = this.sum;
    const terms: MaskTerm[] = [...seeds.values()].map((seed) => ({ seed, nonce: SELF_MASK_NONCE, sign: -1 as const }));
    for (const [i, sk] of maskKeys) {
      const iIdx = this.index.get(i)!;
      for (const v of this.graph.get(i)!) {
        if (!u3.has(v)) continue;
        const vIdx = this.index.get(v)!;
        // v added gamma_{v,i} PRG(s_{v,i}) for the dropped neighbour i; take it back out.
        const seed = pairwiseSeed(cfg.roundId, i, iIdx, v, vIdx, sk, this.keys.get(v)!.maskPublicKey);
        terms.push({ seed, nonce: PAIRWISE_MASK_NONCE, sign: pairwiseSign(vIdx, iIdx) === 1 ? -1 : 1 });
      }
    }
    applyKeystreams(sum, terms);
    for (const t of terms) t.seed.fill(0);
    const included = cfg.siteIds.filter((s) => u3.has(s));
    return { sum: dequantizeSum(sum, cfg.quant), included, excluded: cfg.siteIds.filter((s) => !u3.has(s)) };
  }
}

function previousStage(stage: SecAggStage): SecAggStage {
  switch (stage) {
    case 'setup':
      return 'setup';
    case 'share-keys':
      return 'setup';
    case 'collect-masked-vectors':
      return 'share-keys';
    case 'consistency-check':
      return 'collect-masked-vectors';
    case 'unmask':
      return 'consistency-check';
    default: {
      const never: never = stage;
      throw new SecAggError('wrong-stage', `unknown stage ${String(never)}`);
    }
  }
}
