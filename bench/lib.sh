# Shared by the benchmark scripts: wrk runs and the result table.
# Callers set $duration (wrk -d) before the first wrk_run.

# wrk_rps URL CONNECTIONS [SCRIPT]: requests per second.
wrk_out=""
wrk_run() {
    local url=$1 connections=$2 script=${3:-}
    if [[ -n "$script" ]]; then
        wrk_out=$(wrk -t2 -c"$connections" -d"$duration" --latency -s "$script" "$url")
    else
        wrk_out=$(wrk -t2 -c"$connections" -d"$duration" --latency "$url")
    fi
    if grep -q "Non-2xx" <<<"$wrk_out"; then
        echo "unexpected answers from $url:" >&2
        echo "$wrk_out" >&2
        exit 1
    fi
}
rps() { awk '/Requests\/sec/ {printf "%.0f", $2}' <<<"$wrk_out"; }
# latency_ms PERCENTILE: from wrk --latency (50%, 75%, 90%, 99%).
latency_ms() {
    awk -v p="$1%" '$1 == p {
        v = $2; unit = v; gsub(/[0-9.]/, "", unit); gsub(/[a-z]/, "", v);
        if (unit == "us") v /= 1000; else if (unit == "s") v *= 1000;
        printf "%.2f", v }' <<<"$wrk_out"
}

rows=()
row() { rows+=("| $1 | $2 | $3 |"); }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

# bulk_body SOURCE.jsonl DEST.json ITEMS: a JSON array of the first ITEMS
# valid records of SOURCE, the body bench/bulk.lua posts.
bulk_body() {
    python3 - "$1" "$2" "$3" <<'PY'
import json, sys
items = []
for line in open(sys.argv[1]):
    try:
        value = json.loads(line)
    except ValueError:
        continue
    if isinstance(value, dict) and "pipeline_name" in value:
        items.append(value)
    if len(items) == int(sys.argv[3]):
        break
json.dump(items, open(sys.argv[2], "w"))
PY
}
