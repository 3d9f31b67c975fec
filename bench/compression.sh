#!/usr/bin/env bash
# The compression figures of BENCHMARKS.md: the bytes and the time of
# answers for each encoding a client may ask for, and the same answers to a
# client asking for none, against a build without compression.
#
#   bench/compression.sh                           this build (needs wrk and curl)
#   BASELINE=/path/to/pipeline-service bench/compression.sh
#                                                  also another build, for the
#                                                  uncompressed client (say, one
#                                                  from before compression)
#   bench/compression.sh --smoke                   tiny data, short runs
set -euo pipefail
cd "$(dirname "$0")/.."

smoke=false
[[ "${1:-}" == "--smoke" ]] && smoke=true
if $smoke; then
    records=2000 duration=1s exports=1 rounds=1
else
    records=100000 duration=${BENCH_DURATION:-10s} exports=3 rounds=${BENCH_ROUNDS:-3}
fi
command -v wrk >/dev/null || { echo "wrk not found (apt-get install wrk)" >&2; exit 1; }
data=bench/data
mkdir -p "$data"
binary="${CARGO_TARGET_DIR:-target}/release/pipeline-service"
cargo build --release --quiet
file="$data/runs-$records.jsonl"
[[ -s "$file" ]] || "$binary" gen --records "$records" --out "$file" >/dev/null

pids=()
trap 'for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done' EXIT
# start BINARY PORT: a server over the data file, ready when it answers.
start() {
    PIPELINE_JSONL_PATH="$file" PORT="$2" RUST_LOG=warn "$1" >"$data/compression-$2.log" 2>&1 &
    pids+=($!)
    until curl -sf "http://127.0.0.1:$2/get_pipeline_info?limit=1" -o /dev/null; do
        kill -0 "${pids[-1]}" 2>/dev/null || { cat "$data/compression-$2.log" >&2; exit 1; }
        sleep 0.05
    done
}
current=18621
start "$binary" $current
servers=("this build:$current")
if [[ -n "${BASELINE:-}" ]]; then
    start "$BASELINE" 18622
    servers=("baseline:18622" "${servers[@]}")
fi

latency_ms() {
    awk -v p="$1%" '$1 == p {
        v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
        if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000;
        printf "%.2f", v }' <<<"$2"
}
median() { sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
declare -A measured
# measure KEY PORT PATH ENCODING: one wrk run, appended to measured[KEY].
measure() {
    local key=$1 url="http://127.0.0.1:$2$3" encoding=$4 out
    local header=()
    [[ "$encoding" != none ]] && header=(-H "Accept-Encoding: $encoding")
    out=$(wrk -t2 -c16 -d"$duration" --latency "${header[@]}" "$url")
    if grep -q "Non-2xx" <<<"$out"; then echo "unexpected answers from $url" >&2; echo "$out" >&2; exit 1; fi
    measured[$key]+="$(awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$out") $(latency_ms 50 "$out") $(latency_ms 99 "$out")"$'\n'
}
rows=()
# row LABEL PORT PATH ENCODING: the table row of the runs measured for it
# (medians of req/s, p50 and p99).
row() {
    local key="$1 $3 $4" header=() runs
    [[ "$4" != none ]] && header=(-H "Accept-Encoding: $4")
    runs=${measured[$key]}
    rows+=("| \`$3\` | $4 | $1 | $(curl -s "${header[@]}" -o /dev/null -w '%{size_download}' "http://127.0.0.1:$2$3") \
| $(cut -d' ' -f1 <<<"${runs%$'\n'}" | median) | $(cut -d' ' -f2 <<<"${runs%$'\n'}" | median) \
| $(cut -d' ' -f3 <<<"${runs%$'\n'}" | median) |")
}
paths=("/get_pipeline_info?limit=100" "/get_pipeline_info?limit=1000" "/pipelines" "/health" "/docs/swagger-ui-bundle.js")
for path in "${paths[@]}"; do
    # The uncompressed client, alternating between the builds, so a
    # change in the machine's load touches both alike.
    for _ in $(seq "$rounds"); do
        for server in "${servers[@]}"; do
            measure "${server%%:*} $path none" "${server##*:}" "$path" none
        done
    done
    for encoding in gzip br zstd; do
        measure "this build $path $encoding" $current "$path" "$encoding"
    done
    for server in "${servers[@]}"; do
        row "${server%%:*}" "${server##*:}" "$path" none
    done
    for encoding in gzip br zstd; do
        row "this build" $current "$path" "$encoding"
    done
done

# A whole export, streamed: the fastest of a few downloads.
export_rows=()
export_row() {
    local label=$1 port=$2 encoding=$3 best="" bytes
    local header=()
    [[ "$encoding" != none ]] && header=(-H "Accept-Encoding: $encoding")
    for _ in $(seq "$exports"); do
        read -r bytes seconds < <(curl -s "${header[@]}" -o /dev/null -w '%{size_download} %{time_total}\n' \
            "http://127.0.0.1:$port/download/pipeline_info?format=csv")
        best=$(awk -v a="${best:-$seconds}" -v b="$seconds" 'BEGIN { print (b < a ? b : a) }')
    done
    export_rows+=("| CSV export of $records runs | $encoding | $label | $bytes | $best s |")
}
for server in "${servers[@]}"; do
    export_row "${server%%:*}" "${server##*:}" none
done
for encoding in gzip br zstd; do
    export_row "this build" $current "$encoding"
done

echo
echo "compression benchmark — $(date -u +%Y-%m-%d), $(nproc) cores, $records records, wrk -t2 -c16 -d$duration, uncompressed: median of $rounds alternating runs$($smoke && echo ', SMOKE RUN (tiny data, not comparable)')"
echo
echo "| answer | Accept-Encoding | server | bytes sent | req/s | p50 ms | p99 ms |"
echo "|---|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
echo
echo "| answer | Accept-Encoding | server | bytes sent | time |"
echo "|---|---|---|---|---|"
printf '%s\n' "${export_rows[@]}"
