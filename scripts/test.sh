#!/usr/bin/env bash
# The whole test suite: what `make test` runs after scripts/setup.sh.
#
# usage: scripts/test.sh
#
#   1. lint     gofmt and go vet (scripts/lint.sh)
#   2. build    the binaries in bin/, for the black-box tests
#   3. go test  go test -race -count=1 -timeout 20m ./...
#   4. fuzz     every fuzz target for FUZZTIME (default 15s) (scripts/fuzz.sh)
#
# All phases run even when an earlier one fails; the exit status is non-zero
# if any failed.  The tests find what setup made through these variables:
#   BOKEH_BIN_DIR     bin/ (bokeh-server, ws-worker, ...)
#   BOKEHJS_DIR       build/bokehjs-0.8.2
#   BOKEH_STATIC_DIR  build/static (jquery.min.js, bootstrap/)
#   CHROMIUM          the chromium binary (empty when it is not installed)
#   REDIS_SERVER      the redis-server binary (empty when it is not installed)
# Logs: build/test-logs/go-test.json (the raw go test -json stream).
# shellcheck disable=SC2317 # the phase functions are called through phase()
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_go
need_cmd node "run scripts/setup.sh first"

export FUZZTIME=${FUZZTIME:-15s}
export BOKEH_BIN_DIR="$REPO_ROOT/bin"
export BOKEHJS_DIR="$REPO_ROOT/build/bokehjs-0.8.2"
export BOKEH_STATIC_DIR="$REPO_ROOT/build/static"
CHROMIUM=$(command -v chromium || true)
REDIS_SERVER=$(command -v redis-server || true)
export CHROMIUM REDIS_SERVER
LOGS="$REPO_ROOT/build/test-logs"
rm -rf "$LOGS"
mkdir -p "$LOGS"

if [ "${CI:-}" = true ]; then
  heading "machine"
  go version
  echo "cores: $(nproc)"
  df -h "$REPO_ROOT" | tail -n 1
  free -h | sed -n 2p
fi

START=$SECONDS
summary=()
status=0
# phase NAME COMMAND...: run one phase, note its result and time.
phase() {
  local name=$1 t=$SECONDS result=ok
  shift
  heading "$name"
  "$@" || { result=FAILED; status=1; }
  summary+=("$(printf '  %-8s %-7s %5ds' "$name" "$result" $((SECONDS - t)))")
}

build_bins() {
  mkdir -p bin
  CGO_ENABLED=1 go build -o bin/ ./cmd/... &&
    echo "built: $(find bin -maxdepth 1 -type f -printf '%f ')"
}

# Under phase(), so errexit is off here and PIPESTATUS can be read.
go_tests() {
  CGO_ENABLED=1 go test -race -count=1 -timeout 20m -json ./... 2>&1 |
    tee "$LOGS/go-test.json" | node scripts/gotest-report.js "$LOGS/go-test.counts"
  local rc=("${PIPESTATUS[@]}")
  [ "${rc[0]}" -eq 0 ] && [ "${rc[2]}" -eq 0 ]
}

phase lint scripts/lint.sh
phase build build_bins
phase "go test" go_tests
phase fuzz env FUZZ_RESULT_FILE="$LOGS/fuzz.counts" scripts/fuzz.sh "$FUZZTIME"

# ---- summary ----------------------------------------------------------------
# counts FILE: the "PASSED FAILED [SKIPPED]" a phase wrote, or zeros.
counts() { if [ -s "$1" ]; then cat "$1"; else echo 0 0 0; fi; }
read -r t_pass t_fail t_skip < <(counts "$LOGS/go-test.counts")
read -r f_pass f_fail _ < <(counts "$LOGS/fuzz.counts")
heading "summary"
printf '%s\n' "${summary[@]}"
printf '  %-16s %5ds\n' total $((SECONDS - START))
echo "  go test: $t_pass passed, $t_fail failed, $t_skip skipped; fuzz targets: $f_pass passed, $f_fail failed"
if [ "$status" -eq 0 ]; then echo "  result: all phases passed"; else echo "  result: FAILED (see the phases above)"; fi
echo "tests: $((t_pass + f_pass)) passed, $((t_fail + f_fail)) failed, $t_skip skipped"
exit "$status"
