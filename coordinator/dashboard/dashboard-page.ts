/**
 * The coordinator's dashboard page (`GET /`): one self-contained HTML document (no external scripts, fonts or CDNs:
 * hospital networks may block them) with uPlot and the page's own script inlined. It reads `/status`, `/rounds` and
 * `/sites`; read-only, like the rest of the REST surface. The page itself holds no data (it is served without the
 * token); the data routes need the token.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';

const inline = (js: string): string => js.replace(/<\/script/gi, '<\\/script');

let page: string | undefined;

/** The page, built once per process from the installed uPlot and `dashboard-client.js`. */
export function dashboardHtml(): string {
  if (page) return page;
  const require = createRequire(import.meta.url);
  const uplotJs = readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
  const uplotCss = readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
  const client = readFileSync(new URL('./dashboard-client.js', import.meta.url), 'utf8');
  page = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedsfda coordinator</title>
<link rel="icon" href="data:,">
<style>${uplotCss}
  body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; }
  h1 { font-size: 18px; margin: 0 0 12px; } h2 { font-size: 15px; margin: 0 0 8px; } h3 { font-size: 14px; margin: 0 0 6px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(360px, 1fr)); gap: 16px; margin-bottom: 16px; }
  .card { border: 1px solid #d8dce4; border-radius: 6px; padding: 12px; }
  .sites { display: grid; grid-template-columns: repeat(auto-fill, minmax(300px, 1fr)); gap: 12px; }
  .site { border: 1px solid #e3e6ec; border-radius: 6px; padding: 8px; }
  .dot { display: inline-block; width: 10px; height: 10px; border-radius: 5px; margin-right: 6px; } .dot.on { background: #2f855a; } .dot.off { background: #c53030; }
  table { border-collapse: collapse; width: 100%; } td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eef0f4; vertical-align: top; }
  tr.failed td { background: #fff5f5; } .muted { color: #6b7385; } #error { color: #c53030; } #metrics label { margin-right: 10px; white-space: nowrap; }
</style>
</head>
<body>
<h1>fedsfda coordinator</h1>
<p id="error"></p>
<div class="grid">
  <div class="card"><h2>Status</h2><table id="status"></table><h2 style="margin-top:12px">Secure aggregation</h2><p id="secagg" class="muted">-</p><h2 style="margin-top:12px">Differential privacy</h2><table id="privacy"></table></div>
  <div class="card"><h2>Evaluation metrics</h2><div id="metrics"></div><div id="evalchart"></div><div id="losschart"></div></div>
</div>
<div class="card"><h2>Sites</h2><div id="sites" class="sites"></div></div>
<div class="card" style="margin-top:16px"><h2>Round timeline</h2><table id="timeline"></table></div>
<script>${inline(uplotJs)}</script>
<script>${inline(client)}</script>
</body>
</html>
`;
  return page;
}
