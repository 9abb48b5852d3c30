#!/usr/bin/env bash
# Static checks: gofmt (every .go file must be formatted) and go vet.
#
# usage: scripts/lint.sh
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
ensure_go

echo "gofmt -l"
unformatted=$(find . \( -path ./.git -o -path ./bin -o -path ./build -o -name node_modules \) -prune \
  -o -name '*.go' -type f -print | LC_ALL=C sort | xargs -r gofmt -l)
if [ -n "$unformatted" ]; then
  echo "these files need gofmt (run: gofmt -w FILE):" >&2
  while read -r f; do echo "  $f"; done <<<"$unformatted" >&2
  exit 1
fi

echo "go vet ./..."
go vet ./...
