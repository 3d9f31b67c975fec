#!/usr/bin/env bash
# The dashboard's figures in BENCHMARKS.md: time to interactive of the
# overview in headless Chromium, and what one 30-second refresh costs the
# server, over 1,000,000 runs of 200 pipelines.
#
#   bench/ui.sh           full run (needs chromium and curl; ~550 MB under bench/data/)
#   bench/ui.sh --smoke   20,000 runs: checks the script itself
set -euo pipefail
cd "$(dirname "$0")/.."

records=1000000
[[ "${1:-}" == "--smoke" ]] && records=20000
pipelines=200
data=bench/data
mkdir -p "$data"
file="$data/ui-$records-$pipelines.jsonl"
binary="${CARGO_TARGET_DIR:-target}/release/pipeline-service"
cargo build --release --quiet
[[ -s "$file" ]] || "$binary" gen --records "$records" --pipelines "$pipelines" --out "$file" >/dev/null

port=18611
base="http://127.0.0.1:$port"
PIPELINE_JSONL_PATH="$file" PORT=$port RUST_LOG=warn "$binary" >"$data/ui-server.log" 2>&1 &
server_pid=$!
trap 'kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true' EXIT
until curl -sf "$base/get_pipeline_info?limit=1" -o /dev/null; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$data/ui-server.log" >&2; exit 1; }
    sleep 0.05
done

# One refresh of the overview is these two requests; each is timed 11
# times, one after the other, and the median kept.
since=$(date -u -d '-1 day' +%Y-%m-%dT%H:%M:%SZ)
median_ms() {
    local url=$1
    for _ in $(seq 11); do
        curl -sf -o /dev/null -w '%{time_total}\n' "$url"
    done | sort -n | awk '{ v[NR] = $1 } END { printf "%.1f", v[int((NR + 1) / 2)] * 1000 }'
}
stats_ms=$(median_ms "$base/pipelines/stats?recent=20")
count_ms=$(median_ms "$base/get_pipeline_info?limit=1&start_utc=$since")
stats_kb=$(curl -sf "$base/pipelines/stats?recent=20" | wc -c | awk '{ printf "%.0f", $1 / 1024 }')
groups=$(curl -sf "$base/pipelines/stats" | grep -o '"runs":' | wc -l)

# Time to interactive, in the browser (the test binary only drives Chromium).
tti=$(DASHBOARD_BENCH_URL=$base cargo test --quiet --test api -- --ignored --nocapture \
    overview_time_to_interactive 2>/dev/null | grep -E '^(dashboard-tti|SKIPPED)' || true)

echo
echo "dashboard benchmark — $(date -u +%Y-%m-%d), $(nproc) cores, $records runs, $groups overview rows"
echo
echo "| measurement | target | result |"
echo "|---|---|---|"
echo "| refresh: GET /pipelines/stats?recent=20 (${stats_kb} KB), median of 11 | < 20 ms with the count | $stats_ms ms |"
echo "| refresh: runs in the last 24 h (GET /get_pipeline_info?limit=1&start_utc=…), median of 11 | | $count_ms ms |"
# The median interactive_ms of the given loads (1: empty cache; 2-5:
# cached assets).
interactive() {
    grep -E "^dashboard-tti load=($1) " <<<"$tti" | sed -E 's/.*interactive_ms=([0-9]+).*/\1/' | sort -n |
        awk '{ v[NR] = $1 } END { if (NR == 0) print "n/a"; else printf "%s ms", v[int((NR + 1) / 2)] }'
}
echo "| overview interactive, first visit (empty cache) | < 1 s | $(interactive 1) |"
echo "| overview interactive, later visits (median of 4) | < 1 s | $(interactive "2|3|4|5") |"
echo
echo "$tti"
