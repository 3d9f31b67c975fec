#!/usr/bin/env bash
# The PostgreSQL figures of BENCHMARKS.md (run through bench/run.sh):
#
#   bench/run.sh --backend postgres            1,000,000 runs (BENCH_RECORDS=… for another size)
#   bench/run.sh --backend postgres --smoke    5,000 runs, short runs: checks the script itself
#
# With DATABASE_URL set, that database is used; its runs table must be
# absent or empty. Otherwise a throwaway cluster is made with the installed
# server binaries in a temporary folder, on a Unix socket, with PostgreSQL's
# durable defaults (fsync on, synchronous_commit on), and removed afterwards.
# Runs are loaded with `pipeline-service import` (COPY) from `gen` data,
# then analysed (what autovacuum does after a load) before the reads.
set -euo pipefail
cd "$(dirname "$0")/.."
source bench/lib.sh

smoke=false
[[ "${1:-}" == "--smoke" ]] && smoke=true
records=${BENCH_RECORDS:-1000000}
duration=${BENCH_DURATION:-10s}
if $smoke; then
    records=5000 duration=2s
fi
data=bench/data
mkdir -p "$data"
binary="$(pwd)/${CARGO_TARGET_DIR:-target}/release/pipeline-service"
cargo build --release --quiet
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
[[ -s "$data/runs-$records.jsonl" ]] || "$binary" gen --records "$records" --out "$data/runs-$records.jsonl" >/dev/null

# The server binaries: initdb on PATH, else the newest Debian install.
initdb=$(command -v initdb || ls -d /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1)
bin=$(dirname "$(readlink -f "$initdb")")
# as_owner PROGRAM ARGS…: a server program, as `postgres` when run as root
# (PostgreSQL refuses to run as root).
as_owner() {
    if [[ $(id -u) == 0 ]]; then
        runuser -u postgres -- "$bin/$1" "${@:2}"
    else
        "$bin/$1" "${@:2}"
    fi
}

cluster="" server_pid=""
stop_server() {
    if [[ -n "$server_pid" ]]; then
        kill "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
        server_pid=""
    fi
}
cleanup() {
    stop_server
    if [[ -n "$cluster" ]]; then
        as_owner pg_ctl -D "$cluster/data" stop -m fast >/dev/null 2>&1 || true
        rm -rf "$cluster"
    fi
}
trap cleanup EXIT

if [[ -z "${DATABASE_URL:-}" ]]; then
    cluster=$(mktemp -d /tmp/pipeline-bench-pg.XXXXXX)
    [[ $(id -u) == 0 ]] && chown postgres: "$cluster"
    as_owner initdb -D "$cluster/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
    as_owner pg_ctl -D "$cluster/data" -l "$cluster/server.log" -w start \
        -o "-k $cluster -c listen_addresses='' -c shared_buffers=1GB -c max_connections=200" >/dev/null
    export DATABASE_URL="host=$cluster user=postgres dbname=postgres sslmode=disable"
fi
psql_c() { as_owner psql "$DATABASE_URL" -qtAX -c "$1"; }
existing=$(psql_c "SELECT count(*) FROM pipeline_runs" 2>/dev/null || echo 0)
if [[ "$existing" != 0 ]]; then
    echo "the runs table at DATABASE_URL holds $existing runs: give the benchmark an empty database" >&2
    exit 1
fi
export PIPELINE_BACKEND=postgres

# --- load: import (COPY) ------------------------------------------------------
started=$(date +%s.%N)
"$binary" import "$data/runs-$records.jsonl" >/dev/null 2>&1
import_s=$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { printf "%.1f", a - b }')
stored=$(psql_c "SELECT count(*) FROM pipeline_runs")
row "import (COPY), $stored runs" "bulk ≥ 150000 records/s" "$(awk -v n="$stored" -v s="$import_s" 'BEGIN { printf "%.0f", n / s }') records/s ($import_s s)"
psql_c "VACUUM ANALYZE pipeline_runs"
row "table and indexes on disk" "context" "$(psql_c "SELECT pg_size_pretty(pg_total_relation_size('pipeline_runs'))")"

port=18611
base="http://127.0.0.1:$port"
env PORT="$port" RUST_LOG=warn "$binary" >"$data/server-$port.log" 2>&1 &
server_pid=$!
until curl -sf "$base/ready" -o /dev/null; do
    kill -0 "$server_pid" 2>/dev/null || { cat "$data/server-$port.log" >&2; exit 1; }
    sleep 0.05
done

# latency_row LABEL TARGET URL: p99 at -c4 (a few clients: the
# statement's own time) and at -c32 (mostly queueing for two cores), and
# throughput at -c64.
latency_row() {
    wrk_run "$3" 4
    local few p50 p99
    few=$(latency_ms 99)
    wrk_run "$3" 32
    p50=$(latency_ms 50) p99=$(latency_ms 99)
    wrk_run "$3" 64
    row "$1" "$2" "p99 $few ms (-c4); p50 $p50 ms, p99 $p99 ms (-c32); $(rps) req/s (-c64)"
}

# --- reads --------------------------------------------------------------------
window="pipeline_name=ingest_orders&start_utc=2025-06-01T00:00:00Z&end_utc=2025-06-08T00:00:00Z"
latency_row "limit=100 (with exact total)" "p99 < 10 ms" "$base/get_pipeline_info?limit=100"
latency_row "limit=100&count=none" "context" "$base/get_pipeline_info?limit=100&count=none"
latency_row "pipeline + one-week window (with exact total)" "p99 < 5 ms" "$base/get_pipeline_info?$window"
deep=$((stored * 9 / 10))
cursor=$(curl -sf "$base/get_pipeline_info?limit=1&offset=$deep&count=none&cursor=" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["next_cursor"])')
latency_row "keyset page 100 at position $deep (count=none)" "context" "$base/get_pipeline_info?limit=100&count=none&cursor=$cursor"
latency_row "count=exact unfiltered (limit=1)" "must not dominate a page" "$base/get_pipeline_info?limit=1&count=exact"
latency_row "count=exact, one pipeline (limit=1)" "context" "$base/get_pipeline_info?limit=1&count=exact&pipeline_name=ingest_orders"
# A rowcount bound's exact total is counted through an index, in time
# linear in its matches: two clients (not a queue of them), counted and not.
rowcount_page="$base/get_pipeline_info?limit=100&environment=prod&min_rowcount=1000"
wrk_run "$rowcount_page" 2
row "count=exact, environment + min_rowcount (limit=100)" "must not dominate a page" "p50 $(latency_ms 50) ms, p99 $(latency_ms 99) ms (-c2)"
wrk_run "$rowcount_page&count=none" 2
row "the same page, count=none" "context" "p50 $(latency_ms 50) ms, p99 $(latency_ms 99) ms (-c2)"
latency_row "GET /pipelines (summaries)" "context" "$base/pipelines"
# Statistics, one request at a time rather than under load: the first call
# reads every run; later ones read only the groups whose runs changed
# (none, then one pipeline's after one new run); a time window reads its
# matches in one pass.
stats_time() { curl -s -o /dev/null -w '%{http_code} in %{time_total} s' "$1" || true; }
row "GET /pipelines/stats, first call" "context" "$(stats_time "$base/pipelines/stats")"
row "GET /pipelines/stats, nothing changed (three calls)" "context" \
    "$(for _ in 1 2 3; do stats_time "$base/pipelines/stats"; echo -n "; "; done)"
python3 -c 'import json, sys; r = json.load(open("sample_record.json")); r["pipeline_name"] = "ingest_orders"; print(json.dumps(r))' >"$data/one-run.json"
curl -sf -o /dev/null -H 'content-type: application/json' --data-binary "@$data/one-run.json" "$base/pipelines"
rm -f "$data/one-run.json"
row "GET /pipelines/stats after one new run of ingest_orders" "context" "$(stats_time "$base/pipelines/stats")"
row "GET /pipelines/stats, one-week window" "context" \
    "$(stats_time "$base/pipelines/stats?start_utc=2025-06-01T00:00:00Z&end_utc=2025-06-08T00:00:00Z")"
row "GET /metrics (statistics flags included)" "context" "$(stats_time "$base/metrics")"

# --- writes -------------------------------------------------------------------
wrk_run "$base/pipelines" 64 bench/post.lua
row "durable POST /pipelines, -c64 (committed before each 201)" "≥ 10000 records/s" "$(rps) records/s"
bulk_items=$($smoke && echo 500 || echo 10000)
bulk_body "$data/runs-$records.jsonl" "$data/bulk.json" "$bulk_items"
saved=$duration
duration=$($smoke && echo 2s || echo 5s)
BULK_BODY="$data/bulk.json" wrk_run "$base/pipelines/bulk" 3 bench/bulk.lua
duration=$saved
row "durable POST /pipelines/bulk, $bulk_items records per request, -c3" "≥ 150000 records/s" "$(awk -v r="$(rps)" -v n="$bulk_items" 'BEGIN { printf "%.0f", r * n }') records/s"
rm -f "$data/bulk.json"
stop_server

echo
echo "pipeline-service on PostgreSQL $(as_owner postgres --version | awk '{print $3}') — $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $stored runs$($smoke && echo ', SMOKE RUN (tiny data, not comparable)')"
echo
echo "| measurement | target | result |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
