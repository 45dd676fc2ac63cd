/**
 * One self-contained HTML results report (works offline: the charting library, uPlot, is inlined, and so are the
 * overlay images as data URIs): line charts with labelled axes (one y unit per chart: Dice-like scores and
 * millimetre distances never share an axis), tables, and segmentation overlays.
 */
import { readFileSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { join } from 'node:path';

export interface ReportSeries {
  readonly label: string;
  /** One value per x; null where there is none (a site that failed a round). */
  readonly values: readonly (number | null)[];
}

export interface ReportChart {
  readonly title: string;
  readonly xLabel: string;
  /** The unit of every series of this chart, e.g. "Dice" or "HD95 (mm)". */
  readonly yLabel: string;
  readonly x: readonly number[];
  readonly series: readonly ReportSeries[];
}

export interface ReportTable {
  readonly caption: string;
  readonly head: readonly string[];
  readonly rows: readonly (readonly string[])[];
}

export interface ReportOverlay {
  readonly caption: string;
  readonly png: Buffer;
}

export interface ResultsReport {
  readonly title: string;
  readonly subtitle?: string;
  readonly charts: readonly ReportChart[];
  readonly tables: readonly ReportTable[];
  readonly overlays: readonly ReportOverlay[];
  /** Legend lines (e.g. the class colours, what ∞ means). */
  readonly notes?: readonly string[];
}

let assets: { js: string; css: string } | undefined;

/** uPlot's minified browser build and stylesheet, read once from the installed package. */
export function uplotAssets(): { js: string; css: string } {
  if (!assets) {
    const require = createRequire(import.meta.url);
    assets = {
      js: readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8'),
      css: readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8'),
    };
  }
  return assets;
}

const esc = (s: string): string => s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);
/** JSON safe inside a <script> element. */
const scriptJson = (v: unknown): string => JSON.stringify(v).replace(/</g, '\\u003c');
/** Inline script text cannot contain "</script" (it would end the element). */
const inlineScript = (js: string): string => js.replace(/<\/script/gi, '<\\/script');

const CHART_SCRIPT = `
const COLOURS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#000000', '#f0e442'];
const charts = JSON.parse(document.getElementById('charts').textContent);
charts.forEach((c, i) => {
  const el = document.getElementById('chart-' + i);
  const opts = {
    title: c.title, width: Math.min(720, el.clientWidth || 720), height: 260,
    scales: { x: { time: false } },
    axes: [{ label: c.xLabel, incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] }, { label: c.yLabel }],
    series: [{ label: c.xLabel }].concat(c.series.map((s, k) => ({ label: s.label, stroke: COLOURS[k % COLOURS.length], width: 2, points: { show: true } }))),
  };
  new uPlot(opts, [c.x].concat(c.series.map((s) => s.values)), el);
});
document.body.dataset.chartsReady = String(charts.length);
`;

export function renderReportHtml(r: ResultsReport): string {
  const { js, css } = uplotAssets();
  const tables = r.tables
    .map(
      (t) =>
        `<table><caption>${esc(t.caption)}</caption><thead><tr>${t.head.map((h) => `<th>${esc(h)}</th>`).join('')}</tr></thead><tbody>${t.rows
          .map((row) => `<tr>${row.map((c) => `<td>${esc(c)}</td>`).join('')}</tr>`)
          .join('')}</tbody></table>`,
    )
    .join('\n');
  const overlays = r.overlays
    .map((o) => `<figure><img alt="${esc(o.caption)}" src="data:image/png;base64,${o.png.toString('base64')}"><figcaption>${esc(o.caption)}</figcaption></figure>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(r.title)}</title>
<style>${css}
body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px; }
table { border-collapse: collapse; margin: 12px 0; } caption { text-align: left; font-weight: 600; padding: 4px 0; }
td, th { padding: 3px 8px; border-bottom: 1px solid #e3e6ec; text-align: right; } td:first-child, th:first-child { text-align: left; }
figure { display: inline-block; margin: 8px; } figure img { image-rendering: pixelated; border: 1px solid #d8dce4; }
.muted { color: #6b7385; }
</style></head><body>
<h1>${esc(r.title)}</h1>${r.subtitle ? `<p class="muted">${esc(r.subtitle)}</p>` : ''}
${(r.notes ?? []).map((n) => `<p class="muted">${esc(n)}</p>`).join('\n')}
<h2>Curves</h2><div class="charts">${r.charts.map((_, i) => `<div class="chart" id="chart-${i}"></div>`).join('')}</div>
<h2>Tables</h2>${tables}
${r.overlays.length ? `<h2>Segmentation overlays</h2>${overlays}` : ''}
<script type="application/json" id="charts">${scriptJson(r.charts)}</script>
<script>${inlineScript(js)}</script>
<script>${CHART_SCRIPT}</script>
</body></html>
`;
}

/** Writes `dir/report.html` (and nothing else); returns its path. */
export async function writeReportHtml(dir: string, r: ResultsReport, file = 'report.html'): Promise<string> {
  await mkdir(dir, { recursive: true });
  const path = join(dir, file);
  await writeFile(path, renderReportHtml(r));
  return path;
}
