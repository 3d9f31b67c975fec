#!/usr/bin/env bash
# Fuzzes the running API against its own OpenAPI document with schemathesis,
# every check on: no undocumented status, every answer matches its schema, no
# server error, schema-valid requests accepted and schema-violating ones
# refused. The server runs over a realistic file: `pipeline-service gen`
# (naive local times, legacy lines without classification fields) plus the
# lines the Python service wrote (tests/fixtures/python_written.jsonl).
#
#   .ci/contract-fuzz.sh        # about two minutes on 2 cores (after a release build)
#
# Environment: FUZZ_EXAMPLES (cases per operation and phase, default 200),
# FUZZ_SEED (default 20251001), FUZZ_RECORDS (lines generated, default 3000).
#
# schemathesis is installed, at a pinned version, into a throwaway virtual
# environment. Without PyPI the script fails loudly: a contract check that
# cannot run has not passed.
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
examples=${FUZZ_EXAMPLES:-200}
seed=${FUZZ_SEED:-20251001}
records=${FUZZ_RECORDS:-3000}

fail() {
    echo >&2
    echo "contract-fuzz: FAILED: $*" >&2
    exit 1
}

work=$(mktemp -d)
server=""
cleanup() {
    if [[ -n "$server" ]]; then
        kill "$server" 2>/dev/null || true
        wait "$server" 2>/dev/null || true
    fi
    rm -rf "$work"
}
trap cleanup EXIT

# Debian ships `venv` separately (python3-venv); a clean CI machine may lack it.
if ! python3 -m venv "$work/venv" >/dev/null 2>&1; then
    echo "contract-fuzz: python3 -m venv is unavailable; installing python3-venv" >&2
    sudo_cmd=()
    [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
    "${sudo_cmd[@]}" apt-get update -qq >/dev/null ||
        fail "apt-get update failed, so python3-venv cannot be installed"
    "${sudo_cmd[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null ||
        fail "apt-get install python3-venv failed"
    rm -rf "$work/venv"
    python3 -m venv "$work/venv" || fail "python3 -m venv does not work even with python3-venv"
fi
if ! "$work/venv/bin/pip" install --quiet --disable-pip-version-check \
    "schemathesis==$SCHEMATHESIS_VERSION" >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    fail "could not install schemathesis==$SCHEMATHESIS_VERSION from PyPI (is PyPI reachable?); the contract was NOT checked"
fi

cargo build --release --quiet
binary="${CARGO_TARGET_DIR:-target}/release/pipeline-service"
"$binary" gen --records "$records" --out "$work/runs.jsonl" >/dev/null
cat tests/fixtures/python_written.jsonl >>"$work/runs.jsonl"
# The run the document's date_code example names, with an archived file
# inside the served folder, so /pipelines/archived/… answers 200 too.
mkdir -p "$work/archive"
printf 'date,rows\n2025-08-08,8543\n' >"$work/archive/sales_daily-20250808.csv"
sed -e "s|\"archived_file\": null|\"archived_file\": \"$work/archive/sales_daily-20250808.csv\"|" \
    sample_record.json | tr -d '\n' >>"$work/runs.jsonl"
echo >>"$work/runs.jsonl"

PIPELINE_JSONL_PATH="$work/runs.jsonl" PIPELINE_JSONL_FSYNC=false PIPELINE_ARCHIVE_ROOTS="$work/archive" \
    HOST=127.0.0.1 PORT=0 LOG_FORMAT=text RUST_LOG=info "$binary" >"$work/server.log" 2>&1 &
server=$!
address=""
for _ in $(seq 100); do
    address=$(sed -n 's/.* url=http:\/\/\([0-9.:]*\).*/\1/p' "$work/server.log" | head -n 1)
    [[ -n "$address" ]] && break
    kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; fail "the server did not start"; }
    sleep 0.1
done
[[ -n "$address" ]] || fail "the server did not say where it listens"

# The one exception to positive_data_acceptance: a cursor. The document
# describes the token's exact shape, but a well-formed token is accepted
# only when this service issued it for the same filters (it carries their
# fingerprint); any other is refused with 422 at ["query", "cursor"] by
# design. This check is the built-in one, except for answers whose only
# complaint is the cursor.
cat >"$work/contract_hooks.py" <<'EOF'
import schemathesis
from schemathesis.specs.openapi.checks import positive_data_acceptance


def _only_the_cursor_is_refused(response):
    if response.status_code != 422:
        return False
    try:
        detail = response.json().get("detail")
    except Exception:
        return False
    return bool(detail) and all(
        isinstance(entry, dict) and entry.get("loc") == ["query", "cursor"] for entry in detail
    )


@schemathesis.check
def positive_data_acceptance_except_cursor(ctx, response, case):
    if _only_the_cursor_is_refused(response):
        return None
    return positive_data_acceptance(ctx, response, case)
EOF
# A URL over 65534 bytes (several long filters at once) is refused by the
# HTTP layer with 414, and a body over the limit with 413: both are
# rejections, which schemathesis's default list for schema-violating
# requests leaves out.
cat >"$work/schemathesis.toml" <<'EOF'
[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "414", "415", "422", "428", "429", "5xx"]
EOF

# One worker: CPython 3.11 can fail with "AST constructor recursion depth
# mismatch" when two threads parse at once (hypothesis does, to describe
# its filters), which schemathesis reports as an error.
set +e
PYTHONPATH="$work" SCHEMATHESIS_HOOKS=contract_hooks timeout 900 \
    "$work/venv/bin/schemathesis" --config-file "$work/schemathesis.toml" run \
    "http://$address/openapi.json" \
    --checks all --exclude-checks positive_data_acceptance \
    --max-examples "$examples" --seed "$seed" --workers 1 \
    >"$work/report.txt" 2>&1
status=$?
set -e
cat "$work/report.txt"
[[ $status -eq 124 ]] && fail "schemathesis did not finish within 15 minutes"
[[ $status -eq 0 ]] || fail "schemathesis found problems (exit status $status); see the report above"
if grep -q 'status=5[0-9][0-9]' "$work/server.log"; then
    grep 'status=5[0-9][0-9]' "$work/server.log" >&2
    fail "the server answered 5xx during fuzzing"
fi
echo "contract-fuzz: passed ($(grep -E '^ *[0-9]+ generated' "$work/report.txt" | tr -s ' '))"
