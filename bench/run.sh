#!/usr/bin/env bash
# Reproduces the performance figures of BENCHMARKS.md.
#
#   bench/run.sh             full run (about 10 minutes on 2 cores; needs wrk and ~2 GB of disk)
#   bench/run.sh --size 10m  the same, and the growth table also at 10 million runs
#                            (generates a 5.8 GB file once, reused by later runs; ~4 GB of memory)
#   bench/run.sh --smoke     small data, short runs: checks the script itself (CI)
#   bench/run.sh --backend postgres [--smoke]   the PostgreSQL figures (bench/postgres.sh)
#
# Builds in release, generates data with `pipeline-service gen`, starts the
# server on each file, measures with wrk and prints two tables: the targets,
# and how each cost grows with the number of runs.
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ "${1:-}" == "--backend" ]]; then
    case "${2:-}" in
        jsonl) shift 2 ;;
        postgres) shift 2; exec bench/postgres.sh "$@" ;;
        *) echo "usage: bench/run.sh [--backend jsonl|postgres] [--smoke | --size 10m]" >&2; exit 2 ;;
    esac
fi
source bench/lib.sh

smoke=false
huge=false
case "${1:-}" in
    --smoke) smoke=true ;;
    --size)
        [[ "${2:-}" == "10m" ]] || { echo "usage: bench/run.sh [--backend jsonl|postgres] [--smoke | --size 10m]" >&2; exit 2; }
        huge=true ;;
    "") ;;
    *) echo "usage: bench/run.sh [--backend jsonl|postgres] [--smoke | --size 10m]" >&2; exit 2 ;;
esac
if $smoke; then
    small=1000 medium=2000 large=5000 duration=2s shape_duration=1s
    growth_sizes=(2000 5000)
else
    small=1000 medium=100000 large=1000000 duration=${BENCH_DURATION:-10s} shape_duration=${BENCH_SHAPE_DURATION:-4s}
    growth_sizes=(100000 1000000)
    $huge && growth_sizes+=(10000000)
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

for n in $small $medium $large "${growth_sizes[@]}"; do
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
# query, and sets startup_s and startup_cpu_s (the server's CPU time by
# then: what start-up costs whatever else the machine is doing).
start_server() {
    local file=$1 port=$2
    shift 2
    local started
    started=$(date +%s.%N)
    env PIPELINE_JSONL_PATH="$file" PORT="$port" RUST_LOG=warn,pipeline_service::repository::jsonl=info "$@" "$binary" >"$data/server-$port.log" 2>&1 &
    server_pid=$!
    until curl -sf "http://127.0.0.1:$port/get_pipeline_info?limit=100" -o /dev/null; do
        kill -0 "$server_pid" 2>/dev/null || { echo "server on $file died" >&2; cat "$data/server-$port.log" >&2; exit 1; }
        sleep 0.01
    done
    startup_s=$(awk -v a="$(date +%s.%N)" -v b="$started" 'BEGIN { printf "%.2f", a - b }')
    startup_cpu_s=$(awk -v hz="$(getconf CLK_TCK)" '{ printf "%.2f", ($14 + $15) / hz }' "/proc/$server_pid/stat")
}

load_average() { cut -d' ' -f1 /proc/loadavg; }

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

# --- growth: every cost at each size -----------------------------------------
# Latencies are p99 over sequential requests (wrk -c1), each a page of 100
# with its total; the insert rate is durable POSTs at -c64 into the sized
# store, which is cut back to its size afterwards.
shapes=(
    "newest page|limit=100"
    "pipeline_name|pipeline_name=ingest_orders&limit=100"
    "pipeline_name + one-week window|pipeline_name=ingest_orders&start_utc=2025-06-01T00:00:00Z&end_utc=2025-06-08T00:00:00Z&limit=100"
    "environment|environment=prod&limit=100"
    "pipeline_type + environment|pipeline_type=batch&environment=prod&limit=100"
    "one-week window|start_utc=2025-06-01T00:00:00Z&end_utc=2025-06-08T00:00:00Z&limit=100"
    "end_utc alone|end_utc=2025-12-01T00:00:00Z&limit=100"
    "min_rowcount alone|min_rowcount=1000&limit=100"
    "max_rowcount alone (selective)|max_rowcount=50&limit=100"
    "rowcount range + pipeline_name|min_rowcount=1000&max_rowcount=20000&pipeline_name=ingest_orders&limit=100"
    "min_rowcount + environment|min_rowcount=1000&environment=prod&limit=100"
    "every filter at once|pipeline_name=ingest_orders&script_name=ingest_orders.py&pipeline_type=batch&environment=prod&start_utc=2025-03-01T00:00:00Z&end_utc=2025-09-01T00:00:00Z&min_rowcount=100&max_rowcount=100000&limit=100"
    "deep offset (half-way)|limit=100&offset=HALF"
    "GET /pipelines|-"
    "/pipelines/stats, all pipelines|-"
    "/pipelines/stats, one pipeline|pipeline_name=ingest_orders"
    "/pipelines/stats, last month (from the runs)|start_utc=2025-12-01T00:00:00Z"
    "/metrics scrape|-"
)
declare -A growth
port=18605
for n in "${growth_sizes[@]}"; do
    file="$data/runs-$n.jsonl"
    file_mb=$(( $(stat -c %s "$file") / 1048576 ))
    start_server "$file" $port
    base="http://127.0.0.1:$port"
    growth["start-up: first full answer (s)|$n"]="$startup_s (load $(load_average))"
    growth["start-up: server CPU time (s)|$n"]="$startup_cpu_s"
    growth["resident memory (MB, × file)|$n"]="$(rss_mb) ($(ratio "$(rss_mb)" "$file_mb")×)"
    parts=$(grep -o 'record_columns_mib=[0-9]* strings_mib=[0-9]* orderings_mib=[0-9]* statistics_mib=[0-9]*' "$data/server-$port.log" | tail -1 | sed 's/_mib=/ /g; s/record_columns/columns/')
    growth["memory parts (MiB)|$n"]="$parts"
    # The first scrape computes the statistics flags; later ones reuse them.
    growth["first /metrics scrape (ms)|$n"]=$(curl -s -o /dev/null -w '%{time_total}' "$base/metrics" | awk '{ printf "%.1f", $1 * 1000 }')
    if $have_wrk; then
        for shape in "${shapes[@]}"; do
            name=${shape%%|*}
            query=${shape#*|}
            query=${query//HALF/$((n / 2))}
            case "$name" in
                "GET /pipelines") url="$base/pipelines" ;;
                /pipelines/stats*) url="$base/pipelines/stats"; [[ "$query" != "-" ]] && url="$url?$query" ;;
                "/metrics scrape") url="$base/metrics" ;;
                *) url="$base/get_pipeline_info?$query" ;;
            esac
            saved=$duration
            duration=$shape_duration
            wrk_out=$(wrk -t1 -c1 -d"$duration" --latency "$url")
            duration=$saved
            growth["$name, p99 (ms)|$n"]=$(latency_ms 99)
        done
        stop_server
        size=$(stat -c %s "$file")
        start_server "$file" $port
        wrk_run "$base/pipelines" 64 bench/post.lua
        growth["durable POST /pipelines, -c64 (records/s)|$n"]=$(rps)
        stop_server
        truncate -s "$size" "$file"
    else
        stop_server
    fi
done

echo
echo "pipeline-service benchmark — $(date -u +%Y-%m-%d), $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo)$($smoke && echo ', SMOKE RUN (tiny data, not comparable)')"
echo
echo "| measurement | target | result |"
echo "|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
header="| growth |"
rule="|---|"
for n in "${growth_sizes[@]}"; do
    header+=" $n runs |"
    rule+="---|"
done
echo "$header"
echo "$rule"
measures=("start-up: first full answer (s)" "start-up: server CPU time (s)" "resident memory (MB, × file)" "memory parts (MiB)" "first /metrics scrape (ms)")
for shape in "${shapes[@]}"; do
    measures+=("${shape%%|*}, p99 (ms)")
done
measures+=("durable POST /pipelines, -c64 (records/s)")
for measure in "${measures[@]}"; do
    line="| $measure |"
    for n in "${growth_sizes[@]}"; do
        line+=" ${growth["$measure|$n"]:-—} |"
    done
    echo "$line"
done
