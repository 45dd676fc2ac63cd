/**
 * A self-contained dashboard page (no external scripts, fonts or CDNs: hospital networks may block them) served at
 * `GET /`. It polls `/status` and `/rounds` and draws the mean train loss and the aggregated evaluation metrics per
 * round as inline SVG. Read-only, like the rest of the REST surface.
 */

export const DASHBOARD_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>fedsfda coordinator</title>
<link rel="icon" href="data:,">
<style>
  body { font: 14px system-ui, sans-serif; margin: 24px; color: #1d2330; }
  h1 { font-size: 18px; margin: 0 0 12px; }
  .grid { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 16px; }
  .card { border: 1px solid #d8dce4; border-radius: 6px; padding: 12px; }
  table { border-collapse: collapse; width: 100%; }
  td, th { text-align: left; padding: 3px 6px; border-bottom: 1px solid #eef0f4; }
  .muted { color: #6b7385; }
  svg { width: 100%; height: 180px; }
</style>
</head>
<body>
<h1>fedsfda coordinator</h1>
<div class="grid">
  <div class="card"><h2>Status</h2><table id="status"></table></div>
  <div class="card"><h2>Mean train loss</h2><svg id="loss" viewBox="0 0 320 160"></svg></div>
  <div class="card"><h2>Evaluation (aggregated)</h2><svg id="eval" viewBox="0 0 320 160"></svg><div id="legend" class="muted"></div></div>
  <div class="card"><h2>Rounds</h2><table id="rounds"></table></div>
</div>
<script>
const COLORS = ['#2b6cb0', '#c05621', '#2f855a', '#6b46c1', '#b83280', '#718096'];
function esc(s) { return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c]); }
function plot(svg, series) {
  const pts = series.flatMap((s) => s.points);
  if (pts.length === 0) { svg.innerHTML = '<text x="10" y="80" fill="#6b7385">no data yet</text>'; return; }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys, 0), y1 = Math.max(...ys, y0 + 1e-9);
  const X = (x) => 30 + ((x - x0) / (x1 - x0)) * 280, Y = (y) => 145 - ((y - y0) / (y1 - y0)) * 130;
  let out = '<line x1="30" y1="145" x2="310" y2="145" stroke="#999"/><line x1="30" y1="15" x2="30" y2="145" stroke="#999"/>';
  out += '<text x="2" y="20" font-size="9">' + y1.toPrecision(3) + '</text><text x="2" y="145" font-size="9">' + y0.toPrecision(3) + '</text>';
  series.forEach((s, i) => {
    const d = s.points.map((p, k) => (k ? 'L' : 'M') + X(p[0]).toFixed(1) + ' ' + Y(p[1]).toFixed(1)).join(' ');
    out += '<path d="' + d + '" fill="none" stroke="' + COLORS[i % COLORS.length] + '" stroke-width="2"/>';
  });
  svg.innerHTML = out;
}
// With a REST token configured, open the page as /#token=<token>: it stays in the fragment (never sent to the server
// in the URL) and goes out only as an Authorization header.
const TOKEN = new URLSearchParams(location.hash.slice(1)).get('token');
const api = (path) => fetch(path, TOKEN ? { headers: { Authorization: 'Bearer ' + TOKEN } } : {}).then((r) => {
  if (r.status === 401) throw new Error('unauthorized: open this page as /#token=<REST token>');
  return r.json();
});
async function refresh() {
  try {
    const [status, rounds] = await Promise.all([api('status'), api('rounds')]);
    document.getElementById('status').innerHTML = [
      ['stage', status.stage], ['round', status.round + ' / ' + status.rounds], ['strategy', status.strategy],
      ['min sites', status.minSites], ['connected', status.connectedSites.join(', ') || '-'],
    ].map(([k, v]) => '<tr><th>' + esc(k) + '</th><td>' + esc(v) + '</td></tr>').join('');
    const hist = rounds.rounds;
    plot(document.getElementById('loss'), [{ points: hist.filter((r) => r.meanTrainLoss !== null).map((r) => [r.round, r.meanTrainLoss]) }]);
    const keys = [...new Set(hist.flatMap((r) => Object.keys(r.evalMetrics || {})))].slice(0, COLORS.length);
    plot(document.getElementById('eval'), keys.map((k) => ({ points: hist.filter((r) => r.evalMetrics && k in r.evalMetrics).map((r) => [r.round, r.evalMetrics[k]]) })));
    document.getElementById('legend').innerHTML = keys.map((k, i) => '<span style="color:' + COLORS[i] + '">&#9632; ' + esc(k) + '</span>').join(' &nbsp; ');
    document.getElementById('rounds').innerHTML = '<tr><th>round</th><th>sites</th><th>loss</th><th>failures</th></tr>' + hist.slice().reverse().map((r) =>
      '<tr><td>' + r.round + '</td><td>' + r.sites.filter((s) => s.numExamples === null || s.numExamples > 0).length + '</td><td>' +
      (r.meanTrainLoss === null ? '-' : r.meanTrainLoss.toFixed(4)) + '</td><td>' + esc(r.failures.map((f) => f.siteId + ':' + f.code).join(', ') || '-') + '</td></tr>').join('');
  } catch (e) {
    // Unauthorized: say how to open the page. Anything else: the coordinator is restarting; retry on the next tick.
    if (String(e.message).startsWith('unauthorized')) document.getElementById('status').innerHTML = '<tr><td>' + esc(e.message) + '</td></tr>';
  }
}
refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
`;
