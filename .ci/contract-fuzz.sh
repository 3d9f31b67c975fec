#!/usr/bin/env bash
# Fuzzes the running API against its own OpenAPI document with schemathesis:
# every status must be documented and every response must match its schema.
# Not part of .ci/run (it installs from PyPI and takes a minute or two).
#
#   .ci/contract-fuzz.sh            # builds, starts a server on a temp file, fuzzes
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet 'schemathesis>=4,<5'
cargo build --release --quiet
data=$(mktemp -d)
port=${FUZZ_PORT:-18777}
PIPELINE_JSONL_PATH="$data/runs.jsonl" PORT=$port ./target/release/pipeline-service >"$data/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null; rm -rf "$data"' EXIT
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
# Timestamps sent as numbers are accepted on purpose (pydantic's lax mode),
# so the check that schema-violating input is rejected is left out.
schemathesis run "http://127.0.0.1:$port/openapi.json" \
    --checks all --exclude-checks negative_data_rejection,positive_data_acceptance \
    --suppress-health-check=filter_too_much \
    --max-examples "${FUZZ_EXAMPLES:-150}"
# Schema-valid input must be accepted everywhere except where a value is an
# opaque token: a cursor the service did not issue is refused (422) by design.
schemathesis run "http://127.0.0.1:$port/openapi.json" \
    --checks positive_data_acceptance --exclude-path /get_pipeline_info \
    --exclude-path /download/pipeline_info \
    --suppress-health-check=filter_too_much \
    --max-examples "${FUZZ_EXAMPLES:-150}"
if grep -q 'status=5' "$data/server.log"; then
    echo "server answered 5xx during fuzzing" >&2
    exit 1
fi
