/**
 * The suite's tables: per dataset, rows x families of mean ± std Dice over the seeds, the best source-free row's share
 * of the source-only -> target-supervised gap per family, and the checks the issue asks for (the supervised reference
 * is the best in its column, no row below source-only beyond noise, federated vs centralized source).
 */
import { SAFEGUARD_FALLBACK_NOTE } from '../../site-agent/adapt/index.ts';
import { CENTRALIZED_SOURCE, SOURCE_ONLY, TARGET_SUPERVISED, type CellRun, type DatasetResult } from './suite-run.ts';

export interface MeanStd {
  readonly mean: number;
  readonly std: number;
  readonly n: number;
}

export function meanStd(v: readonly number[]): MeanStd {
  const f = v.filter(Number.isFinite);
  if (f.length === 0) return { mean: NaN, std: NaN, n: 0 };
  const mean = f.reduce((a, b) => a + b, 0) / f.length;
  return { mean, std: Math.sqrt(f.reduce((a, b) => a + (b - mean) ** 2, 0) / f.length), n: f.length };
}

const isReference = (row: string): boolean => row === SOURCE_ONLY || row === TARGET_SUPERVISED || row === CENTRALIZED_SOURCE || row.startsWith('few-label-');

export interface FamilySummary {
  readonly family: string;
  readonly heldOut: boolean;
  readonly sourceOnly: number;
  readonly supervised: number;
  /**
   * The source-free row with the highest mean Dice, and its share of the gap (NaN when there is no gap: the
   * supervised reference is not above source-only by more than `noise`, see `noGap`).
   */
  readonly best: { row: string; dice: number; gapClosed: number } | null;
  /** Source-only is within `noise` of the target-supervised reference or above it: a share of the gap means nothing. */
  readonly noGap: boolean;
  /** Source-free rows whose mean ends below source-only by more than `noise`. */
  readonly belowSourceOnly: string[];
  /** Rows (other than the supervised one) whose mean beats the supervised reference. */
  readonly aboveSupervised: string[];
}

/** Dice of every row for one family. */
function column(r: DatasetResult, family: string): Map<string, MeanStd> {
  return new Map(r.rows.map((row) => [row, meanStd((r.cells[row]?.[family] ?? []).map((c: CellRun) => c.dice))]));
}

/** `noise`: the tolerance of "below source-only" (Dice points as a fraction, e.g. 0.01). */
export function summarizeFamilies(r: DatasetResult, noise = 0.01): FamilySummary[] {
  return r.families.map(({ name, heldOut }) => {
    const col = column(r, name);
    const so = col.get(SOURCE_ONLY)?.mean ?? NaN;
    const sup = col.get(TARGET_SUPERVISED)?.mean ?? NaN;
    const noGap = sup - so <= noise;
    let best: FamilySummary['best'] = null;
    const below: string[] = [];
    const above: string[] = [];
    for (const [row, s] of col) {
      if (row !== TARGET_SUPERVISED && s.mean > sup) above.push(row);
      if (isReference(row)) continue;
      if (s.mean < so - noise) below.push(row);
      if (best === null || s.mean > best.dice) best = { row, dice: s.mean, gapClosed: noGap ? NaN : (s.mean - so) / (sup - so) };
    }
    return { family: name, heldOut, sourceOnly: so, supervised: sup, best, noGap, belowSourceOnly: below, aboveSupervised: above };
  });
}

const fmt = (s: MeanStd): string => (s.n === 0 ? 'n/a' : `${s.mean.toFixed(3)}±${s.std.toFixed(3)}`);

function table(r: DatasetResult, families: string[], title: string): string[] {
  if (families.length === 0) return [];
  const w = Math.max(18, ...r.rows.map((x) => x.length + 1));
  const cw = 14;
  const lines = [title, `${'row'.padEnd(w)}${families.map((f) => f.slice(0, cw - 1).padEnd(cw)).join('')}`];
  for (const row of r.rows) {
    lines.push(`${row.padEnd(w)}${families.map((f) => fmt(meanStd((r.cells[row]?.[f] ?? []).map((c) => c.dice))).padEnd(cw)).join('')}`);
  }
  const sums = summarizeFamilies(r).filter((s) => families.includes(s.family));
  lines.push(`${'best source-free'.padEnd(w)}${sums.map((s) => (s.best ? s.best.row.slice(0, cw - 1) : 'n/a').padEnd(cw)).join('')}`);
  const gapText = (s: FamilySummary): string => (s.noGap && Number.isFinite(s.supervised) ? 'no gap' : s.best && Number.isFinite(s.best.gapClosed) ? `${(100 * s.best.gapClosed).toFixed(0)}%` : 'n/a');
  lines.push(`${'gap closed'.padEnd(w)}${sums.map((s) => gapText(s).padEnd(cw)).join('')}`);
  return lines;
}

/** Per row: cells where the do-no-harm safeguard fell back to the unadapted model (by its note), and cells run. */
export function safeguardFallbacks(r: DatasetResult): Map<string, { fallbacks: number; cells: number }> {
  const out = new Map<string, { fallbacks: number; cells: number }>();
  for (const row of r.rows) {
    const cells = r.families.flatMap((f) => r.cells[row]?.[f.name] ?? []);
    out.set(row, { fallbacks: cells.filter((c) => c.notes.some((n) => n.startsWith(SAFEGUARD_FALLBACK_NOTE))).length, cells: cells.length });
  }
  return out;
}

/** The dataset's tables (published families, then held-out ones) and the checks, as text. */
export function formatSuiteDataset(r: DatasetResult, seeds: readonly number[]): string {
  const pub = r.families.filter((f) => !f.heldOut).map((f) => f.name);
  const held = r.families.filter((f) => f.heldOut).map((f) => f.name);
  const lines = [
    ...table(r, pub, `${r.name}: Dice (mean ± std over seeds ${seeds.join(', ')}), published families`),
    ...table(r, held, `${r.name}: held-out families (never tuned on)`),
  ];
  const fed = meanStd(r.source.map((s) => s.federated));
  const cen = meanStd(r.source.map((s) => s.centralized));
  lines.push(`${r.name}: in-domain source Dice, federated ${fmt(fed)}, centralized ${fmt(cen)} (difference ${(100 * (fed.mean - cen.mean)).toFixed(1)} points)`);
  const fb = [...safeguardFallbacks(r)].filter(([, c]) => c.fallbacks > 0);
  lines.push(`${r.name}: safeguard fallbacks to the unadapted model per row: ${fb.length === 0 ? 'none' : fb.map(([row, c]) => `${row} ${c.fallbacks}/${c.cells}`).join(', ')}`);
  for (const s of summarizeFamilies(r)) {
    const issues: string[] = [];
    if (s.noGap && Number.isFinite(s.supervised)) issues.push(`no gap: source-only ${s.sourceOnly.toFixed(3)} vs target-supervised ${s.supervised.toFixed(3)}`);
    if (s.belowSourceOnly.length) issues.push(`below source-only: ${s.belowSourceOnly.join(', ')}`);
    if (s.aboveSupervised.length) issues.push(`above target-supervised: ${s.aboveSupervised.join(', ')}`);
    if (issues.length) lines.push(`${r.name} ${s.family}: ${issues.join('; ')}`);
  }
  return lines.join('\n');
}
