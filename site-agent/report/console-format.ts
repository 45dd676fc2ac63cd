/**
 * How results read in a terminal and in files: distances with their infinite entries shown (∞ and how many, never a
 * finite mean that silently leaves them out), and tables without colour escapes when stdout is not a terminal or
 * NO_COLOR is set (https://no-color.org).
 */
import { colourAllowed } from '../../protocol/common/index.ts';

/**
 * A distance summary in mm: the mean of the finite values, with the infinite ones (empty prediction on non-empty
 * truth, MONAI semantics) counted beside it: `2.08`, `2.08 (+3 ∞)`, `∞ (3)`, `n/a`.
 */
export function formatDistance(meanMm: number | null | undefined, infiniteCount: number | null | undefined, digits = 2): string {
  const inf = infiniteCount ?? 0;
  const finite = meanMm !== null && meanMm !== undefined && Number.isFinite(meanMm);
  if (inf > 0) return finite ? `${meanMm.toFixed(digits)} (+${inf} ∞)` : `∞ (${inf})`;
  return finite ? meanMm.toFixed(digits) : 'n/a';
}

/** cli-table3 style: its default red headers and grey borders only on a colour terminal. */
export function tableStyle(fd = 1): { head: string[]; border: string[] } {
  return colourAllowed(fd) ? { head: ['cyan'], border: ['grey'] } : { head: [], border: [] };
}
