/**
 * The neighbour graph of a round (Bell et al., CCS 2020, Sec. 3.2 and Sec. 4): every site masks with, and shares
 * its secrets among, only its neighbours. For small n the graph is complete (plain SecAgg, Bonawitz et al. 2017);
 * for large n it is a k-regular Harary graph H_{k,n} over a random permutation of the sites, k = O(log n), which is
 * the construction Bell et al. analyse. The permutation is drawn from the round seed with the XSalsa20 keystream,
 * so every site derives the same graph from public data and the coordinator does not choose edges one by one.
 */
import { GRAPH_NONCE } from './kdf.ts';
import { keystreamWords } from './keystream.ts';
import { SecAggError } from './errors.ts';

/** Default degree: complete graph up to 16 sites, else the smallest even k >= 2*ceil(log2 n) (Bell et al.: k = O(log n)). */
export function defaultDegree(numSites: number): number {
  if (numSites <= 16) return numSites - 1;
  const k = 2 * Math.ceil(Math.log2(numSites));
  return Math.min(numSites - 1, k);
}

/** Uniform permutation of 0..n-1 by Fisher-Yates over keystream words, with rejection to avoid modulo bias. */
function seededPermutation(n: number, roundSeed: Uint8Array): number[] {
  const perm = Array.from({ length: n }, (_, i) => i);
  let words = keystreamWords(roundSeed, GRAPH_NONCE, 4 * n + 64);
  let w = 0;
  const next = (): number => {
    if (w === words.length) {
      // Extremely unlikely (rejections are rare); extend the stream deterministically.
      words = keystreamWords(roundSeed, GRAPH_NONCE, words.length * 2);
      w = words.length / 2;
    }
    return words[w++];
  };
  for (let i = n - 1; i > 0; i--) {
    const range = i + 1;
    const limit = Math.floor(2 ** 32 / range) * range;
    let r = next();
    while (r >= limit) r = next();
    const j = r % range;
    [perm[i], perm[j]] = [perm[j], perm[i]];
  }
  return perm;
}

/**
 * Neighbours of every site (excluding itself), as site ids. degree = n-1 gives the complete graph; a smaller degree
 * must be even (a Harary graph H_{k,n} connects each position to the k/2 positions on either side of a ring).
 */
export function neighbourGraph(
  siteIds: readonly string[],
  degree: number,
  roundSeed: Uint8Array,
): Map<string, string[]> {
  const n = siteIds.length;
  if (!Number.isInteger(degree) || degree < 2 || degree > n - 1) {
    throw new SecAggError('bad-config', `neighbour degree must be an integer in [2, ${n - 1}], got ${degree}`);
  }
  const graph = new Map<string, string[]>();
  if (degree === n - 1) {
    for (const id of siteIds) graph.set(id, siteIds.filter((o) => o !== id));
    return graph;
  }
  if (degree % 2 !== 0) {
    throw new SecAggError('bad-config', `a non-complete neighbour graph needs an even degree, got ${degree}`);
  }
  const perm = seededPermutation(n, roundSeed);
  const half = degree / 2;
  for (let p = 0; p < n; p++) {
    const nb: string[] = [];
    for (let d = 1; d <= half; d++) {
      nb.push(siteIds[perm[(p + d) % n]], siteIds[perm[(p - d + n) % n]]);
    }
    graph.set(siteIds[perm[p]], nb);
  }
  return graph;
}
