#!/usr/bin/env bash
# Reproduces the performance figures of BENCHMARKS.md.
#
#   bench/run.sh           full run (about 6 minutes on 2 cores; needs wrk and ~2 GB of disk)
#   bench/run.sh --smoke   small data, short runs: checks the script itself (CI)
#   bench/run.sh --backend postgres [--smoke]   the PostgreSQL figures (bench/postgres.sh)
#
# Builds in release, generates data with `pipeline-service gen`, starts the
# server on each file, measures with wrk and prints one table.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--backend" ]]; then
    case "${2:-}" in
        jsonl) shift 2 ;;
        postgres) shift 2; exec bench/postgres.sh "$@" ;;
        *) echo "usage: bench/run.sh [--backend jsonl|postgres] [--smoke]" >&2; exit 2 ;;
    esac
fi
source bench/lib.sh

smoke=false
[[ "${1:-}" == "--smoke" ]] && smoke=true
if $smoke; then
    small=1000 medium=2000 large=5000 duration=2s
else
    small=1000 medium=100000 large=1000000 duration=${BENCH_DURATION:-10s}
fi
data=bench/data
mkdir -p "$data"
binary="${CARGO_TARGET_DIR:-target}/release/pipeline-service"
cargo build --release --quiet
have_wrk=true
command -v wrk >/dev/null || have_wrk=false
if ! $have_wrk; then
    echo "wrk not found (apt-get install wrk): throughput rows are skipped" >&2
fi

for n in $small $medium $large; do
    [[ -s "$data/runs-$n.jsonl" ]] || "$binary" gen --records "$n" --out "$data/runs-$n.jsonl" >/dev/null
done

server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
trap stop_server EXIT

# start_server FILE PORT [VAR=VALUE…]: starts, waits for the first full
# query, and sets startup_s.
start_server() {
    local file=$1 port=$2
    shift 2
    local started
    started=$(date +%s.%N)
    env PIPELINE_JSONL_PATH="$file" PORT="$port" RUST_LOG=warn "$@" "$binary" >"$data/server-$port.log" 2>&1 &
    server_pid=$!
    until curl -sf "http://127.0.0.1:$port/get_pipeline_info?limit=100" -o /dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { echo "server on $file died" >&2; cat "$data/server-$port.log" >&2; exit 1; }
        sleep 0.01
    done
    startup_s=$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { printf "%.2f", a - b }')
}

rss_mb() { awk '/VmRSS/ {printf "%.0f", $2 / 1024}' "/proc/$server_pid/status"; }


# --- 100k records: query throughput relative to /health -------------------
port=18601
start_server "$data/runs-$medium.jsonl" $port
base="http://127.0.0.1:$port"
selective="$base/get_pipeline_info?pipeline_name=ingest_orders&start_utc=2025-06-01T00:00:00Z&end_utc=2025-06-08T00:00:00Z"
if $have_wrk; then
    wrk_run "$base/health" 64; health=$(rps)
    wrk_run "$base/get_pipeline_info?limit=100" 64; page=$(rps)
    wrk_run "$selective" 64; sel=$(rps)
    wrk_run "$base/get_pipeline_info?limit=100" 32; p99=$(latency_ms 99)
    row "/health, $medium records, -c64" "baseline" "$health req/s"
    row "limit=100, $medium records, -c64" "≥ 30% of /health" "$page req/s ($(ratio "$page" "$health")× /health)"
    row "name + one-week window, $medium records, -c64" "≥ 50% of /health" "$sel req/s ($(ratio "$sel" "$health")× /health)"
    row "limit=100 p99 latency, -c32" "< 5 ms" "$p99 ms"
else
    curl -sf "$selective" -o /dev/null
fi
stop_server

# --- small file: latency baseline for cost growth --------------------------
port=18602
start_server "$data/runs-$small.jsonl" $port
if $have_wrk; then
    wrk_run "http://127.0.0.1:$port/get_pipeline_info?limit=100" 32; small_p50=$(latency_ms 50)
fi
stop_server

# --- large file: startup, memory, summaries, streaming, cost growth --------
port=18603
file_mb=$(( $(stat -c %s "$data/runs-$large.jsonl") / 1048576 ))
start_server "$data/runs-$large.jsonl" $port
base="http://127.0.0.1:$port"
resident=$(rss_mb)
row "first full query after start, $large records ($file_mb MB)" "< 2 s" "${startup_s} s"
row "resident memory after load" "≤ 0.8 × file = $(( file_mb * 8 / 10 )) MB" "$resident MB ($(ratio "$resident" "$file_mb")× file)"
if $have_wrk; then
    wrk_run "$base/pipelines" 64
    row "GET /pipelines, $large records, -c64" "≥ 20000 req/s" "$(rps) req/s"
    wrk_run "$base/get_pipeline_info?limit=100" 32; large_p50=$(latency_ms 50)
    row "limit=100 p50 latency, $large vs $small records, -c32" "within 2×" "$large_p50 ms vs $small_p50 ms"
fi
before=$(rss_mb)
peak=$before
curl -sf "$base/get_pipeline_info?all_data=true" -o "$data/all.json" &
curl_pid=$!
while kill -0 $curl_pid 2>/dev/null; do
    now=$(rss_mb)
    (( now > peak )) && peak=$now
    sleep 0.05
done
wait $curl_pid
answered=$(python3 -c "import json,sys; d=json.load(open('$data/all.json')); print(d['count'])")
rm -f "$data/all.json"
row "all_data=true over $answered records: extra memory" "< 64 MB" "$(( peak - before )) MB"
stop_server

# --- durable inserts ---------------------------------------------------------
if $have_wrk; then
    port=18604
    rm -f "$data/inserts.jsonl"
    start_server "$data/inserts.jsonl" $port
    wrk_run "http://127.0.0.1:$port/pipelines" 64 bench/post.lua
    row "durable POST /pipelines, -c64 (fsync before each 201)" "≥ 25000 records/s" "$(rps) records/s"
    stored=$(wc -l <"$data/inserts.jsonl")
    stop_server
    rm -f "$data/inserts.jsonl"
    sync_file="$data/sync-probe"
    started=$(date +%s.%N)
    dd if=/dev/zero of="$sync_file" bs=512 count=1000 oflag=dsync status=none
    syncs=$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { printf "%.0f", 1000 / (a - b) }')
    rm -f "$sync_file"
    row "disk: one-at-a-time synced writes (dd oflag=dsync)" "context" "$syncs syncs/s"

    # Bulk ingest: 10,000-record JSON arrays (from the generated data) posted
    # by 3 clients into an empty store, so parsing one overlaps storing another.
    bulk_items=$($smoke && echo 500 || echo 10000)
    bulk_body "$data/runs-$medium.jsonl" "$data/bulk.json" "$bulk_items"
    rm -f "$data/bulk-store.jsonl"
    start_server "$data/bulk-store.jsonl" $port
    saved=$duration
    duration=$($smoke && echo 2s || echo 5s)
    BULK_BODY="$data/bulk.json" wrk_run "http://127.0.0.1:$port/pipelines/bulk" 3 bench/bulk.lua
    duration=$saved
    row "durable POST /pipelines/bulk, $bulk_items records per request, -c3" "≥ 200000 records/s" "$(awk -v r="$(rps)" -v n="$bulk_items" 'BEGIN { printf "%.0f", r * n }') records/s"
    stop_server
    rm -f "$data/bulk-store.jsonl" "$data/bulk.json"
fi

echo
echo "pipeline-service benchmark — $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)$($smoke && echo ', SMOKE RUN (tiny data, not comparable)')"
echo
echo "| measurement | target | result |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
