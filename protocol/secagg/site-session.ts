/**
 * Site side of SecAgg+ (client middleware): one `SecAggSiteSession` per round, fed the coordinator's instructions
 * in order. Its stages are an explicit state machine; every transition is checked before any work is done, and
 * after any refusal the session is aborted for good (a site that caught a swapped key does not continue).
 * Paper steps: Bonawitz et al., CCS 2017, Fig. 4 (client side of rounds 0-4, incl. the consistency check); Bell et al., CCS 2020, Sec. 3.2
 * (masks and shares restricted to graph neighbours).
 */
import nacl from 'tweetnacl';
import { isBytes } from './bytes.ts';
import { validateSecAggConfig, type SecAggConfig } from './config.ts';
import { signSurvivors, verifySurvivorSignatures } from './consistency.ts';
import { SecAggError, isSecAggError } from './errors.ts';
import { parseSecAggInstruction } from './schemas.ts';
import { PAIRWISE_MASK_NONCE, SELF_MASK_NONCE, pairwiseSeed, pairwiseSign } from './kdf.ts';
import { applyKeystreams, type MaskTerm } from './keystream.ts';
import {
  SECAGG_VERSION,
  type AdvertiseKeysRes,
  type CollectIns,
  type ConsistencyCheckIns,
  type EncryptedSharesRes,
  type MaskedVectorRes,
  type SecAggInstruction,
  type SecAggReply,
  type SetupIns,
  type ShareKeysIns,
  type SurvivorsSignatureRes,
  type UnmaskIns,
  type UnmaskSharesRes,
} from './messages.ts';
import { neighbourGraph } from './neighbours.ts';
import { quantize } from './quantize.ts';
import {
  generateRoundKeyPairs,
  signRoundKeys,
  verifyRoundKeys,
  type EnrolledIdentities,
  type RoundKeyPairs,
  type SignedRoundKeys,
} from './round-keys.ts';
import { openShareBundle, sealShareBundle, splitSecret } from './share-box.ts';

export type SiteSessionState =
  | 'awaiting-setup'
  | 'keys-advertised'
  | 'shares-sent'
  | 'masked-vector-sent'
  | 'survivors-signed'
  | 'done'
  | 'aborted';

export interface SiteSessionOptions {
  readonly siteId: string;
  /** The site's Ed25519 identity key pair (the one it is enrolled with). */
  readonly identity: nacl.SignKeyPair;
  /** Enrolled identity public keys of all sites that may appear as peers. */
  readonly enrolled: EnrolledIdentities;
  /** The float vector to aggregate (e.g. `packVectors(...).vector`); a function is called only when masking. */
  readonly input: Float32Array | (() => Float32Array);
  /**
   * Distributed differential privacy: adds this site's integer noise share to its quantized vector (mod 2^32) before
   * masking, so the unmasked sum is already noised (protocol/privacy/distributed-noise.ts).
   */
  readonly addNoise?: (quantized: Uint32Array) => void;
}

interface HeldShares {
  readonly selfMaskSeedShare: Uint8Array;
  readonly maskKeyShare: Uint8Array;
}

/** Which kind of share this site has revealed for a peer; at most one kind per peer, ever. */
export type RevealedKind = 'self-mask-seed' | 'mask-key';

export class SecAggSiteSession {
  private state: SiteSessionState = 'awaiting-setup';
  private config: SecAggConfig | undefined;
  private index = -1;
  private neighbours = new Set<string>();
  private keys: RoundKeyPairs | undefined;
  private peerKeys = new Map<string, SignedRoundKeys>();
  private selfMaskSeed: Uint8Array | undefined;
  private held = new Map<string, HeldShares>();
  private readonly revealed = new Map<string, RevealedKind>();
  private abortReason: SecAggError | undefined;
  /** The survivor set U3 this site signed in the consistency check; unmask must present exactly this set. */
  private signedSurvivors: Set<string> | undefined;
  private signedDropped: Set<string> | undefined;

  constructor(private readonly opts: SiteSessionOptions) {}

  get siteId(): string {
    return this.opts.siteId;
  }

  get currentState(): SiteSessionState {
    return this.state;
  }

  /** Why the session aborted, if it did. */
  get error(): SecAggError | undefined {
    return this.abortReason;
  }

  /** What this site revealed in the unmask stage, per peer (for audit and tests). */
  get revealedShares(): ReadonlyMap<string, RevealedKind> {
    return this.revealed;
  }

  /**
   * The middleware entry point: dispatches an instruction to its stage handler. Any refusal aborts the session
   * and is rethrown as a `SecAggError` (the transport sends `{ok:false, error:{code, reason}}`).
   */
  async handle(ins: SecAggInstruction): Promise<SecAggReply> {
    if (this.state === 'aborted') {
      throw new SecAggError('aborted', `session of "${this.opts.siteId}" aborted earlier: ${this.abortReason?.message}`);
    }
    try {
      ins = parseSecAggInstruction(ins);
    } catch (e) {
      throw this.abort(e as SecAggError);
    }
    switch (ins.type) {
      case 'secagg/setup':
        return this.guard(() => this.onSetup(ins));
      case 'secagg/share-keys':
        return this.guard(() => this.onShareKeys(ins));
      case 'secagg/collect-masked-vectors':
        return this.guard(() => this.onCollect(ins));
      case 'secagg/consistency-check':
        return this.guard(() => this.onConsistencyCheck(ins));
      case 'secagg/unmask':
        return this.guard(() => this.onUnmask(ins));
      default: {
        const never: never = ins;
        throw this.abort(new SecAggError('malformed-message', `unknown instruction ${(never as { type: string }).type}`));
      }
    }
  }

  private async guard<T>(fn: () => T | Promise<T>): Promise<T> {
    if (this.state === 'aborted') {
      throw new SecAggError('aborted', `session of "${this.opts.siteId}" aborted earlier: ${this.abortReason?.message}`);
    }
    try {
      return await fn();
    } catch (e) {
      throw this.abort(
        isSecAggError(e) ? e : new SecAggError('malformed-message', `unexpected failure: ${(e as Error).message}`),
      );
    }
  }

  private abort(e: SecAggError): SecAggError {
    this.state = 'aborted';
    this.abortReason = e;
    // Forget secrets: an aborted round must not reveal anything later.
    this.selfMaskSeed?.fill(0);
    this.keys?.mask.secretKey.fill(0);
    this.keys?.share.secretKey.fill(0);
    this.held.clear();
    return e;
  }

  private expectState(expected: SiteSessionState, what: string): void {
    if (this.state !== expected) {
      throw new SecAggError('wrong-stage', `"${this.opts.siteId}" got ${what} in state ${this.state}, expected ${expected}`);
    }
  }

  private expectRound(roundId: unknown, version: unknown): void {
    if (version !== SECAGG_VERSION) throw new SecAggError('malformed-message', `unsupported version ${String(version)}`);
    if (roundId !== this.config?.roundId) {
      throw new SecAggError('malformed-message', `message for round "${String(roundId)}", expected "${this.config?.roundId}"`);
    }
  }

  /** Round 0 (AdvertiseKeys): check the config, make two X25519 pairs, sign them with the identity key. */
  private onSetup(ins: SetupIns): AdvertiseKeysRes {
    this.expectState('awaiting-setup', 'setup');
    if (ins.version !== SECAGG_VERSION) throw new SecAggError('malformed-message', `unsupported version ${ins.version}`);
    validateSecAggConfig(ins.config);
    const cfg = ins.config;
    this.index = cfg.siteIds.indexOf(this.opts.siteId);
    if (this.index < 0) throw new SecAggError('unknown-site', `"${this.opts.siteId}" is not in this round's site list`);
    const graph = neighbourGraph(cfg.siteIds, cfg.degree, cfg.roundSeed);
    this.neighbours = new Set(graph.get(this.opts.siteId));
    for (const nb of this.neighbours) {
      if (!this.opts.enrolled.has(nb)) throw new SecAggError('unknown-site', `neighbour "${nb}" is not enrolled`);
    }
    this.config = cfg;
    this.keys = generateRoundKeyPairs();
    const signed = signRoundKeys(cfg.roundId, this.opts.siteId, this.keys, this.opts.identity.secretKey);
    this.state = 'keys-advertised';
    return { type: 'secagg/advertise-keys', version: SECAGG_VERSION, roundId: cfg.roundId, ...signed };
  }

  /**
   * Round 1 (ShareKeys): verify every relayed neighbour key against the enrolled identity (refusing the round on
   * any mismatch), then Shamir-share b_i and s_i^SK among the neighbours in U1 and box each share to its holder.
   */
  private async onShareKeys(ins: ShareKeysIns): Promise<EncryptedSharesRes> {
    this.expectState('keys-advertised', 'share-keys');
    this.expectRound(ins.roundId, ins.version);
    const cfg = this.config!;
    const keys = this.keys!;
    const peers = new Map<string, SignedRoundKeys>();
    for (const k of ins.keys) {
      if (k.siteId === this.opts.siteId) {
        // The relay may echo our own keys back; they must be exactly ours.
        verifyRoundKeys(cfg.roundId, k, this.opts.enrolled);
        if (!isBytes(k.maskPublicKey) || k.maskPublicKey.some((b, i) => b !== keys.mask.publicKey[i])) {
          throw new SecAggError('bad-signature', 'the relay echoed different keys for this site');
        }
        continue;
      }
      if (!this.neighbours.has(k.siteId)) {
        throw new SecAggError('unknown-site', `keys relayed for "${k.siteId}", which is not a neighbour of "${this.opts.siteId}"`);
      }
      if (peers.has(k.siteId)) throw new SecAggError('malformed-message', `keys of "${k.siteId}" relayed twice`);
      verifyRoundKeys(cfg.roundId, k, this.opts.enrolled);
      peers.set(k.siteId, k);
    }
    if (peers.size < cfg.threshold) {
      throw new SecAggError('below-threshold', `${peers.size} neighbours advertised keys, threshold is ${cfg.threshold}`);
    }
    this.peerKeys = peers;
    this.selfMaskSeed = nacl.randomBytes(32);
    const holders = [...peers.keys()];
    const seedShares = await splitSecret(this.selfMaskSeed, holders.length, cfg.threshold);
    const keyShares = await splitSecret(keys.mask.secretKey, holders.length, cfg.threshold);
    const shares = holders.map((to, h) => ({
      to,
      ciphertext: sealShareBundle(
        { roundId: cfg.roundId, from: this.opts.siteId, to, selfMaskSeedShare: seedShares[h], maskKeyShare: keyShares[h] },
        keys.share.secretKey,
        peers.get(to)!.sharePublicKey,
      ),
    }));
    this.state = 'shares-sent';
    return { type: 'secagg/encrypted-shares', version: SECAGG_VERSION, roundId: cfg.roundId, siteId: this.opts.siteId, shares };
  }

  /**
   * Round 2 (MaskedInputCollection): open the boxes addressed to us (this fixes U2 among our neighbours), then
   * y_i = q(x_i) + PRG(b_i) + sum_{j in U2 cap N(i)} gamma_ij PRG(s_ij)   (mod 2^32), Bonawitz et al. Sec. 4.
   */
  private onCollect(ins: CollectIns): MaskedVectorRes {
    this.expectState('shares-sent', 'collect-masked-vectors');
    this.expectRound(ins.roundId, ins.version);
    const cfg = this.config!;
    const keys = this.keys!;
    const held = new Map<string, HeldShares>();
    for (const c of ins.ciphertexts) {
      const peer = this.peerKeys.get(c.from);
      if (!peer) throw new SecAggError('unknown-site', `share relayed from "${c.from}", which did not advertise keys to us`);
      if (held.has(c.from)) throw new SecAggError('malformed-message', `two shares relayed from "${c.from}"`);
      const b = openShareBundle(c.ciphertext, keys.share.secretKey, peer.sharePublicKey, {
        roundId: cfg.roundId,
        from: c.from,
        to: this.opts.siteId,
      });
      held.set(c.from, { selfMaskSeedShare: b.selfMaskSeedShare, maskKeyShare: b.maskKeyShare });
    }
    if (held.size < cfg.threshold) {
      throw new SecAggError('below-threshold', `${held.size} neighbours sent shares, threshold is ${cfg.threshold}`);
    }
    this.held = held;
    const x = typeof this.opts.input === 'function' ? this.opts.input() : this.opts.input;
    if (!(x instanceof Float32Array) || x.length !== cfg.vectorLength) {
      throw new SecAggError('bad-input', `input must be a Float32Array of length ${cfg.vectorLength}, got ${x?.length}`);
    }
    const y = quantize(x, cfg.quant);
    this.opts.addNoise?.(y);
    const terms: MaskTerm[] = [{ seed: this.selfMaskSeed!, nonce: SELF_MASK_NONCE, sign: 1 }];
    for (const j of held.keys()) {
      const jIndex = cfg.siteIds.indexOf(j);
      const seed = pairwiseSeed(cfg.roundId, this.opts.siteId, this.index, j, jIndex, keys.mask.secretKey, this.peerKeys.get(j)!.maskPublicKey);
      terms.push({ seed, nonce: PAIRWISE_MASK_NONCE, sign: pairwiseSign(this.index, jIndex) });
    }
    applyKeystreams(y, terms);
    for (const t of terms.slice(1)) t.seed.fill(0);
    this.state = 'masked-vector-sent';
    return { type: 'secagg/masked-vector', version: SECAGG_VERSION, roundId: cfg.roundId, siteId: this.opts.siteId, masked: y };
  }

  /**
   * Round 3 (ConsistencyCheck): check the survivor set U3 and dropped set U2\U3 against what this site knows, then
   * sign U3 with the identity key. Nothing secret is revealed in this stage.
   */
  private onConsistencyCheck(ins: ConsistencyCheckIns): SurvivorsSignatureRes {
    this.expectState('masked-vector-sent', 'consistency-check');
    this.expectRound(ins.roundId, ins.version);
    const cfg = this.config!;
    const survivors = new Set(ins.survivors);
    const dropped = new Set(ins.dropped);
    if (survivors.size !== ins.survivors.length || dropped.size !== ins.dropped.length) {
      throw new SecAggError('malformed-message', 'survivor/dropped lists contain duplicates');
    }
    for (const s of [...survivors, ...dropped]) {
      if (!cfg.siteIds.includes(s)) throw new SecAggError('unknown-site', `"${s}" is not part of this round`);
      if (survivors.has(s) && dropped.has(s)) {
        throw new SecAggError('inconsistent-request', `"${s}" is listed as both survivor and dropped`);
      }
    }
    if (!survivors.has(this.opts.siteId)) {
      throw new SecAggError('inconsistent-request', `"${this.opts.siteId}" sent its masked vector but is not listed as a survivor`);
    }
    if (survivors.size < cfg.threshold) {
      throw new SecAggError('below-threshold', `${survivors.size} survivors, threshold is ${cfg.threshold}`);
    }
    for (const nb of this.neighbours) {
      // A neighbour whose shares we hold completed share-keys (it is in U2): it must be classified. One whose
      // shares we never got is not in U2 and must not be classified (we could not have masked with it).
      const classified = survivors.has(nb) || dropped.has(nb);
      if (this.held.has(nb) !== classified) {
        throw new SecAggError(
          'inconsistent-request',
          this.held.has(nb)
            ? `neighbour "${nb}" shared keys with us but is neither survivor nor dropped`
            : `neighbour "${nb}" never sent us shares, so it cannot be in U2`,
        );
      }
    }
    this.signedSurvivors = survivors;
    this.signedDropped = dropped;
    this.state = 'survivors-signed';
    return {
      type: 'secagg/survivors-signature',
      version: SECAGG_VERSION,
      roundId: cfg.roundId,
      siteId: this.opts.siteId,
      signature: signSurvivors(cfg.roundId, ins.survivors, this.opts.identity.secretKey),
    };
  }

  /**
   * Round 4 (Unmasking): require at least t survivor signatures on exactly the set we signed, then for each
   * neighbour whose shares we hold reveal the b-share if it survived, the s^SK-share if it dropped — never both
   * (Bonawitz et al. Sec. 4: revealing both would unmask its input).
   */
  private onUnmask(ins: UnmaskIns): UnmaskSharesRes {
    this.expectState('survivors-signed', 'unmask');
    this.expectRound(ins.roundId, ins.version);
    const cfg = this.config!;
    const survivors = this.signedSurvivors!;
    const dropped = this.signedDropped!;
    const same = (a: readonly string[], b: Set<string>) => a.length === b.size && a.every((x) => b.has(x));
    if (!same(ins.survivors, survivors) || !same(ins.dropped, dropped)) {
      throw new SecAggError('inconsistent-request', 'the unmask request names a different survivor set than the one this site signed');
    }
    verifySurvivorSignatures(cfg.roundId, ins.survivors, ins.signatures, this.opts.enrolled, cfg.threshold);
    const selfMaskShares = [];
    const maskKeyShares = [];
    for (const [j, h] of this.held) {
      const kind: RevealedKind = survivors.has(j) ? 'self-mask-seed' : 'mask-key';
      const before = this.revealed.get(j);
      if (before && before !== kind) {
        throw new SecAggError('inconsistent-request', `refusing to reveal a ${kind} share of "${j}" after a ${before} share`);
      }
      this.revealed.set(j, kind);
      if (kind === 'self-mask-seed') selfMaskShares.push({ of: j, share: h.selfMaskSeedShare });
      else maskKeyShares.push({ of: j, share: h.maskKeyShare });
    }
    this.state = 'done';
    return {
      type: 'secagg/unmask-shares',
      version: SECAGG_VERSION,
      roundId: cfg.roundId,
      siteId: this.opts.siteId,
      selfMaskShares,
      maskKeyShares,
    };
  }
}
