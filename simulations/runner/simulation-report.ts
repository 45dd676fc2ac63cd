/**
 * The HTML results report of a federated simulation (`OUT/report.html`, next to summary.json): loss, Dice per class
 * and HD95 per round per site (Dice-like scores and millimetre distances on separate charts, each with its own
 * labelled axis), the per-site and per-round tables with infinite distances shown as ∞ and counted, and overlays
 * (image, truth, prediction of the final global model) for a few validation slices per site. Only a simulation can
 * draw those: in a real federation the images never leave the hospitals (a site's `adapt` report draws its own).
 */
import type { RoundRecord } from '../../coordinator/index.ts';
import { decodeWeightSet } from '../../protocol/index.ts';
import { createUNet } from '../../site-agent/model/index.ts';
import { formatDistance, overlayPng, type ReportChart, type ReportOverlay, type ResultsReport } from '../../site-agent/report/index.ts';
import { predict } from '../../site-agent/evaluation/index.ts';
import { buildSiteData } from './site-data.ts';
import type { SimulationSummary } from './summary.ts';

/** The federated scenario (simulations/scenario.ts), named through the site-data builder that reads it. */
type FederatedScenario = Parameters<typeof buildSiteData>[0];

const fmt = (v: number | null | undefined, digits = 3): string => (v === null || v === undefined || !Number.isFinite(v) ? 'n/a' : v.toFixed(digits));

/** One chart: `metric` of every site's record per round. */
function perSiteChart(history: readonly RoundRecord[], siteIds: readonly string[], title: string, yLabel: string, pick: (s: RoundRecord['sites'][number]) => number | null | undefined): ReportChart {
  return {
    title,
    xLabel: 'round',
    yLabel,
    x: history.map((r) => r.round),
    series: siteIds.map((id) => ({
      label: id,
      values: history.map((r) => {
        const v = pick(r.sites.find((s) => s.siteId === id) ?? ({} as RoundRecord['sites'][number]));
        return v === undefined || v === null || !Number.isFinite(v) ? null : v;
      }),
    })),
  };
}

export function simulationCharts(history: readonly RoundRecord[], siteIds: readonly string[], numClasses: number): ReportChart[] {
  const charts: ReportChart[] = [
    perSiteChart(history, siteIds, 'Local training loss', 'loss', (s) => s.trainLoss),
    perSiteChart(history, siteIds, 'Validation Dice (mean over classes)', 'Dice', (s) => s.evalMetrics?.dice),
  ];
  for (let c = 1; c < numClasses; c++) charts.push(perSiteChart(history, siteIds, `Validation Dice, class ${c}`, 'Dice', (s) => s.evalMetrics?.[`dice.class${c}`]));
  charts.push(perSiteChart(history, siteIds, 'Validation HD95 (finite values; ∞ counted in the tables)', 'HD95 (mm)', (s) => s.evalMetrics?.hd95));
  return charts;
}

/** Up to `k` validation slices with the most foreground per site, predicted by the final global model. */
async function overlays(scenario: FederatedScenario, finalWeights: Uint8Array, k: number): Promise<ReportOverlay[]> {
  const out: ReportOverlay[] = [];
  const m = scenario.model;
  const unet = createUNet({ inChannels: scenario.data.channels, numClasses: scenario.data.numClasses, baseChannels: m.baseChannels, depth: m.depth, ...(m.normalization === 'group' ? { normalization: 'group' as const } : {}) }, scenario.seed);
  try {
    unet.setWeights(decodeWeightSet(finalWeights));
    for (const [index, site] of scenario.sites.entries()) {
      const { val } = await buildSiteData(scenario, index);
      const px = val.height * val.width;
      const fg = Array.from({ length: val.n }, (_, i) => ({ i, n: val.labels.subarray(i * px, (i + 1) * px).reduce((a, b) => a + (b > 0 ? 1 : 0), 0) }));
      const chosen = fg.sort((a, b) => b.n - a.n).slice(0, k).map((x) => x.i).sort((a, b) => a - b);
      for (const i of chosen) {
        const input = val.images.subarray(i * px * val.channels, (i + 1) * px * val.channels);
        const pred = predict(unet, input, 1, val.height, val.width, val.channels);
        const image = input.filter((_, j) => j % val.channels === 0); // the first channel is shown
        out.push({
          caption: `${site.id}, ${val.caseIds[i]}: image | truth | prediction`,
          png: overlayPng({ image, height: val.height, width: val.width, truth: val.labels.subarray(i * px, (i + 1) * px), prediction: pred }),
        });
      }
    }
  } finally {
    unet.dispose();
  }
  return out;
}

export async function simulationReport(args: {
  summary: SimulationSummary;
  history: readonly RoundRecord[];
  scenario: FederatedScenario;
  /** The final global model (final-weights.fsws), or null when the run produced none (no overlays then). */
  finalWeights: Uint8Array | null;
  slicesPerSite?: number;
}): Promise<ResultsReport> {
  const { summary: s, history, scenario } = args;
  const numFg = scenario.data.numClasses - 1;
  const inf = (site: SimulationSummary['sites'][number]): number | null => (site.infiniteDistances === null ? null : site.infiniteDistances / 2);
  return {
    title: `fedsfda simulate: ${s.scenario}`,
    subtitle: `${s.sites.length} sites, ${s.rounds.length} rounds, backend ${s.backend}, ${(s.durationMs / 1000).toFixed(1)} s, started ${s.startedAt}`,
    notes: [
      'Dice is the mean over the validation volumes of each site (final global model); distances are in mm over finite values, with "(+n ∞)" the number of (volume, class) distances that were infinite (empty prediction on non-empty truth, MONAI semantics).',
      'Overlay colours: class 1 orange, 2 sky blue, 3 green, 4 yellow, 5 blue, 6 vermilion, 7 purple.',
    ],
    charts: simulationCharts(history, s.sites.map((x) => x.id), scenario.data.numClasses),
    tables: [
      {
        caption: 'Final global model per site',
        head: ['site', 'scanner', ...Array.from({ length: numFg }, (_, i) => `Dice c${i + 1}`), 'Dice mean', 'untrained', 'HD95 mm', 'ASSD mm', '∞ distances'],
        rows: s.sites.map((x) => [
          x.id,
          typeof x.shift === 'string' ? x.shift : 'custom',
          ...x.dice.perClass.map((v) => fmt(v)),
          fmt(x.dice.mean),
          fmt(x.untrainedDice.mean),
          formatDistance(x.hd95Mm, inf(x)),
          formatDistance(x.assdMm, inf(x)),
          String(x.infiniteDistances ?? 'n/a'),
        ]),
      },
      {
        caption: 'Rounds',
        head: ['round', 'mean train loss', 'mean val Dice', 'duration s', 'failures'],
        rows: history.map((r) => [
          String(r.round),
          fmt(r.meanTrainLoss, 4),
          fmt(r.evalMetrics?.dice),
          (r.durationMs / 1000).toFixed(1),
          r.failures.map((f) => `${f.siteId} ${f.stage}: ${f.code}`).join('; ') || '-',
        ]),
      },
    ],
    overlays: args.finalWeights ? await overlays(scenario, args.finalWeights, args.slicesPerSite ?? 3) : [],
  };
}
