#!/usr/bin/env bash
# Runs `fedsfda simulate` next to N busy loops (default 4) and counts what a loaded machine costs the run: site
# failures by code (history.json), rounds that did not aggregate, wall time, and the load average before and after.
# Take the bench lock around it on a shared machine:
#   flock /work/bench.lock scripts/reliability-under-load.sh simulations/scenarios/default.json /tmp/load-default 4
# Output: OUT/simulate.log (the run's own output) and one JSON line on stdout with the counts.
set -u
scenario=${1:?usage: reliability-under-load.sh SCENARIO OUT_DIR [BUSY_LOOPS]}
out=${2:?usage: reliability-under-load.sh SCENARIO OUT_DIR [BUSY_LOOPS]}
busy=${3:-4}
here=$(cd "$(dirname "$0")/.." && pwd)
rm -rf "$out" && mkdir -p "$out"
pids=()
for _ in $(seq 1 "$busy"); do
  timeout 1800 node -e 'for(;;);' &
  pids+=($!)
done
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done; wait 2>/dev/null; }
trap cleanup EXIT
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
started=$(date -u +%FT%TZ)
t0=$(date +%s%N)
node "$here/bin/fedsfda.mjs" simulate --config "$scenario" --out "$out/run" >"$out/simulate.log" 2>&1
rc=$?
t1=$(date +%s%N)
load_after=$(cut -d' ' -f1-3 /proc/loadavg)
cleanup
trap - EXIT
node -e '
const fs = require("fs");
const [out, scenario, rc, ms, started, lb, la, busy] = process.argv.slice(1);
let history = [];
try { history = JSON.parse(fs.readFileSync(out + "/run/history.json", "utf8")); } catch {}
const byCode = {};
const lostRounds = [];
for (const r of history) {
  for (const f of r.failures ?? []) byCode[`${f.stage}:${f.code}`] = (byCode[`${f.stage}:${f.code}`] ?? 0) + 1;
  if (r.round > 0 && r.aggregated === false) lostRounds.push(r.round);
}
const log = fs.readFileSync(out + "/simulate.log", "utf8");
const failureLines = log.split("\n").filter((l) => l.includes("site failure:")).length;
console.log(JSON.stringify({ scenario, exitCode: Number(rc), wallS: Math.round(Number(ms) / 100) / 10, started, busyLoops: Number(busy), loadBefore: lb, loadAfter: la,
  rounds: history.filter((r) => r.round > 0).length, lostRounds, failuresByCode: byCode, failureLines }));
' "$out" "$scenario" "$rc" "$(( (t1 - t0) / 1000000 ))" "$started" "$load_before" "$load_after" "$busy"
