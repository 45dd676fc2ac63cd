// The coordinator dashboard's browser code (plain JS, inlined into the page with uPlot; no external requests).
// Polls /status, /rounds and /sites. With a REST token the page is opened as /#token=<token>: the token stays in the
// fragment (never sent in a URL) and goes out only as an Authorization header.
'use strict';
const ROUND_AXIS = { label: 'round', incrs: [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000] };
const COLOURS = ['#0072b2', '#d55e00', '#009e73', '#cc79a7', '#e69f00', '#56b4e9', '#000000', '#f0e442', '#7f7f7f', '#8c564b'];
const TOKEN = new URLSearchParams(location.hash.slice(1)).get('token');
const $ = (id) => document.getElementById(id);
const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
/** Distances in mm go on the mm axis; counts are not plotted; everything else is a score in [0, 1] (Dice, IoU, ...). */
const axisOf = (k) => (/(^|\.)(hd95|assd|hd)(\.|$)/.test(k) ? 'mm' : /infiniteDistances|volumes|numExamples/.test(k) ? null : 'score');
const selected = new Set(['dice', 'hd95']);
let known = [];
let chart = null;
let lossChart = null;
let lastKey = '';

function api(path) {
  return fetch(path, TOKEN ? { headers: { Authorization: 'Bearer ' + TOKEN } } : {}).then((r) => {
    if (r.status === 401) throw new Error('unauthorized: open this page as /#token=<REST token> (the coordinator prints this URL at start)');
    return r.json();
  });
}

function bytes(n) {
  const u = ['B', 'KB', 'MB', 'GB'];
  let i = 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(1) : String(n)) + ' ' + u[i];
}

function ago(iso) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  return (s < 60 ? s + ' s' : s < 3600 ? Math.round(s / 60) + ' min' : Math.round(s / 3600) + ' h') + ' ago';
}

function metricLine(m) {
  if (!m) return '-';
  return Object.keys(m).filter((k) => axisOf(k) !== null).slice(0, 6).map((k) => esc(k) + ' ' + (axisOf(k) === 'mm' ? m[k].toFixed(2) + ' mm' : m[k].toFixed(3))).join(', ') +
    (m.infiniteDistances ? ', ∞ distances ' + m.infiniteDistances : '');
}

// Per-site byte budget of the current round (status.byteBudget): the limit, the busiest site, who is refused.
function budgetLine(b) {
  if (!b) return '-';
  const peak = b.sites.reduce((a, x) => (a && a.received >= x.received ? a : x), null);
  const refused = b.sites.filter((x) => x.refused).map((x) => x.siteId);
  return bytes(b.perRoundBytes) + ' per site per round; ' + b.period + ': ' + (peak ? 'most ' + peak.siteId + ' ' + bytes(peak.received) : 'nothing received') +
    (refused.length ? '; refused: ' + refused.join(', ') : '');
}

function renderStatus(st) {
  $('status').innerHTML = [
    ['stage', st.stage], ['round', st.round + ' / ' + st.rounds], ['strategy', st.strategy], ['min sites', st.minSites],
    ['connected', (st.connectedSites || []).join(', ') || '-'], ['coordinator key', st.coordinatorKey],
    ['byte budget', budgetLine(st.byteBudget)],
  ].map(([k, v]) => '<tr><th>' + esc(k) + '</th><td>' + esc(v) + '</td></tr>').join('');
}

// The privacy ledger (status.privacyLedger: training and statistics composed in RDP; status.privacy: DP-FedAvg's own).
function renderPrivacy(st) {
  const led = st.privacyLedger;
  const tr = st.privacy;
  if (!led && !tr) { $('privacy').innerHTML = '<tr><td class="muted">off (no differential privacy: the model and statistics carry no DP guarantee)</td></tr>'; return; }
  const eps = (e) => (e === null || e === undefined ? '-' : Number(e).toFixed(3));
  const delta = led ? led.delta : tr.delta;
  const rows = [
    ['training epsilon', tr ? eps(led && led.training ? led.training.epsilon : tr.epsilon) + ' (' + esc(tr.mode) + ', z ' + Number(tr.noiseMultiplier).toFixed(2) + ', ' + tr.roundsAccounted + ' / ' + tr.plannedRounds + ' rounds, planned ' + eps(tr.plannedEpsilon) + ')' : 'not DP'],
    ['statistics epsilon', led && led.statistics ? eps(led.statistics.epsilon) + ' (' + led.statistics.releases.map(esc).join(', ') + ')' : 'none released yet'],
    ['total epsilon', eps(led ? led.epsilon : tr.epsilon) + ' at delta ' + delta],
  ];
  $('privacy').innerHTML = rows.map(([k, v]) => '<tr><th>' + esc(k) + '</th><td class="' + k.split(' ')[0] + '-epsilon">' + v + '</td></tr>').join('');
}

function renderSites(sites) {
  $('sites').innerHTML = sites.map((s) =>
    '<div class="site" data-site="' + esc(s.siteId) + '"><h3><span class="dot ' + (s.connected ? 'on' : 'off') + '"></span>' + esc(s.siteId) + '</h3><table>' +
    '<tr><th>connected</th><td class="connected">' + (s.connected ? 'yes' : 'no') + '</td></tr>' +
    '<tr><th>last seen</th><td class="last-seen" title="' + esc(s.lastSeen || '') + '">' + ago(s.lastSeen) + '</td></tr>' +
    '<tr><th>stage</th><td class="stage">' + esc(s.stage) + (s.round ? ' (round ' + s.round + ')' : '') + '</td></tr>' +
    '<tr><th>bytes to / from</th><td class="bytes">' + bytes(s.bytesToSite) + ' / ' + bytes(s.bytesFromSite) + '</td></tr>' +
    '<tr><th>last evaluation</th><td class="metrics">' + metricLine(s.lastEvalMetrics) + '</td></tr>' +
    '<tr><th>last train loss</th><td>' + (s.lastFitMetrics && s.lastFitMetrics.trainLoss !== undefined ? s.lastFitMetrics.trainLoss.toFixed(4) : '- (secure rounds report only the sum)') + '</td></tr>' +
    '<tr><th>last failure</th><td class="failure">' + (s.lastFailure ? 'round ' + s.lastFailure.round + ' ' + esc(s.lastFailure.stage) + ': ' + esc(s.lastFailure.code) + ' (' + esc(s.lastFailure.reason) + ')' : '-') + '</td></tr>' +
    '</table></div>').join('') || '<p class="muted">no site enrolled</p>';
}

function renderTimeline(rounds) {
  $('timeline').innerHTML = '<tr><th>round</th><th>started</th><th>duration</th><th>sites</th><th>model</th><th>secure aggregation</th><th>failures (cause)</th></tr>' +
    rounds.slice().reverse().map((r) => {
      const sa = r.secureAggregation;
      const secure = sa ? (sa.error ? 'aborted: ' + esc(sa.error) : 'sum of ' + sa.included.length + (sa.excluded.length ? ', left out ' + esc(sa.excluded.join(', ')) : '')) : 'off';
      const fails = r.failures.map((f) => esc(f.siteId) + ' ' + esc(f.stage) + ': ' + esc(f.code) + ' (' + esc(f.reason) + ')').join('<br>') || '-';
      return '<tr class="' + (r.failures.length || (sa && sa.error) ? 'failed' : '') + '"><td>' + r.round + '</td><td>' + esc(new Date(r.startedAt).toLocaleTimeString()) + '</td><td>' +
        (r.durationMs / 1000).toFixed(1) + ' s</td><td>' + r.sites.filter((s) => s.numExamples === null || s.numExamples > 0).length + '</td><td>' + (r.aggregated ? 'aggregated' : 'kept') +
        '</td><td class="secagg">' + secure + '</td><td>' + fails + '</td></tr>';
    }).join('');
  const last = rounds[rounds.length - 1];
  const sa = last && last.secureAggregation;
  $('secagg').textContent = !last ? 'no round yet' : !sa ? 'off (plain aggregation)' : sa.error ? 'last round aborted: ' + sa.error :
    'on: round ' + last.round + ' summed ' + sa.included.length + ' site(s) (' + sa.included.join(', ') + ')' + (sa.excluded.length ? ', left out: ' + sa.excluded.join(', ') : '') + ', ' + sa.totalExamples + ' examples';
}

function renderPicker() {
  $('metrics').innerHTML = known.map((k) => '<label><input type="checkbox" value="' + esc(k) + '"' + (selected.has(k) ? ' checked' : '') + '> ' + esc(k) +
    ' <span class="muted">(' + (axisOf(k) === 'mm' ? 'mm' : 'score') + ')</span></label>').join(' ');
  for (const box of $('metrics').querySelectorAll('input')) box.onchange = () => { box.checked ? selected.add(box.value) : selected.delete(box.value); lastKey = ''; refresh(); };
}

function plot(rounds) {
  const keys = [...new Set(rounds.flatMap((r) => Object.keys(r.evalMetrics || {})))].filter((k) => axisOf(k) !== null).sort();
  if (keys.join() !== known.join()) { known = keys; renderPicker(); }
  const shown = known.filter((k) => selected.has(k));
  const x = rounds.map((r) => r.round);
  const key = shown.join() + '|' + rounds.length;
  if (key === lastKey) return;
  lastKey = key;
  const series = [{ label: 'round' }].concat(shown.map((k, i) => ({ label: k + (axisOf(k) === 'mm' ? ' (mm)' : ''), scale: axisOf(k), stroke: COLOURS[i % COLOURS.length], width: 2, dash: axisOf(k) === 'mm' ? [6, 4] : undefined, points: { show: true } })));
  const data = [x].concat(shown.map((k) => rounds.map((r) => (r.evalMetrics && k in r.evalMetrics ? r.evalMetrics[k] : null))));
  const width = Math.max(320, $('evalchart').clientWidth - 8);
  if (chart) chart.destroy();
  chart = new uPlot({
    title: 'Evaluation (aggregated over sites)', width, height: 280, scales: { x: { time: false }, score: { range: [0, 1] }, mm: { auto: true } },
    axes: [ROUND_AXIS, { scale: 'score', label: 'Dice / IoU (0-1)' }, { scale: 'mm', side: 1, label: 'distance (mm)', grid: { show: false } }],
    series,
  }, data, $('evalchart'));
  if (lossChart) lossChart.destroy();
  lossChart = new uPlot({
    title: 'Mean training loss', width, height: 220, scales: { x: { time: false } }, axes: [ROUND_AXIS, { label: 'loss' }],
    series: [{ label: 'round' }, { label: 'mean train loss', stroke: COLOURS[0], width: 2, points: { show: true } }],
  }, [x, rounds.map((r) => r.meanTrainLoss)], $('losschart'));
  // For tests and the curious: uPlot draws its axes on a canvas, so their labels and scales are read from here.
  window.fedsfdaDashboard = { evalChart: chart, lossChart };
}

async function refresh() {
  try {
    const [st, rounds, sites] = await Promise.all([api('status'), api('rounds'), api('sites')]);
    renderStatus(st);
    renderPrivacy(st);
    renderSites(sites.sites);
    renderTimeline(rounds.rounds);
    plot(rounds.rounds);
    $('error').textContent = '';
    document.body.dataset.rounds = String(rounds.rounds.length);
    document.body.dataset.ready = 'true';
  } catch (e) {
    // Unauthorized: say how to open the page. Anything else: the coordinator is busy or restarting; retry next tick.
    $('error').textContent = String(e.message).startsWith('unauthorized') ? e.message : 'coordinator not reachable, retrying: ' + e.message;
  }
}
refresh();
setInterval(refresh, 2000);
