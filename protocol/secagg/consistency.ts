/**
 * Consistency check of the survivor set (Bonawitz et al., CCS 2017, Fig. 4 round 3 "ConsistencyCheck", active
 * adversary variant). Before any site reveals a share, every survivor signs the survivor set U3 it was told, and in
 * the unmask stage each site requires at least t valid signatures, by distinct survivors, on exactly the set it
 * signed itself. Without this a malicious coordinator could tell different sites different survivor lists and
 * collect, per victim neighbour, the "dropped" kind of share from some sites and the "survived" kind from others,
 * isolating one site's vector with fewer than t colluders.
 */
import { concatBytes, lengthPrefixed, utf8 } from './bytes.ts';
import { ed25519Sign, ed25519Verify } from './curves.ts';
import { SecAggError } from './errors.ts';
import type { EnrolledIdentities } from './round-keys.ts';

const SURVIVORS_DOMAIN = utf8('fedsfda/secagg/v1/survivors');

export interface SurvivorSignature {
  readonly siteId: string;
  readonly signature: Uint8Array;
}

/** The signed bytes: domain, round id, then the survivor ids sorted (order of the list does not matter). */
export function survivorsMessage(roundId: string, survivors: readonly string[]): Uint8Array {
  const sorted = [...survivors].sort();
  return concatBytes([
    lengthPrefixed(SURVIVORS_DOMAIN),
    lengthPrefixed(utf8(roundId)),
    lengthPrefixed(utf8(String(sorted.length))),
    ...sorted.map((s) => lengthPrefixed(utf8(s))),
  ]);
}

export function signSurvivors(roundId: string, survivors: readonly string[], identitySecretKey: Uint8Array): Uint8Array {
  return ed25519Sign(survivorsMessage(roundId, survivors), identitySecretKey);
}

/**
 * Throws unless at least `threshold` distinct members of `survivors` signed exactly this survivor set
 * (`below-threshold` if too few valid signatures, `bad-signature` if any offered signature is invalid).
 */
export function verifySurvivorSignatures(
  roundId: string,
  survivors: readonly string[],
  signatures: readonly SurvivorSignature[],
  enrolled: EnrolledIdentities,
  threshold: number,
): void {
  const members = new Set(survivors);
  const msg = survivorsMessage(roundId, survivors);
  const valid = new Set<string>();
  for (const s of signatures) {
    if (!members.has(s.siteId)) {
      throw new SecAggError('inconsistent-request', `survivor-set signature by "${s.siteId}", who is not a survivor`);
    }
    const pk = enrolled.get(s.siteId);
    if (!pk) throw new SecAggError('unknown-site', `survivor-set signature by unenrolled "${s.siteId}"`);
    if (!ed25519Verify(msg, s.signature, pk)) {
      throw new SecAggError('bad-signature', `survivor-set signature of "${s.siteId}" does not verify for this set`);
    }
    valid.add(s.siteId);
  }
  if (valid.size < threshold) {
    throw new SecAggError('below-threshold', `${valid.size} survivors signed the survivor set, threshold is ${threshold}`);
  }
}
