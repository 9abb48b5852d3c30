# shellcheck shell=bash
# scripts/lib.sh: helpers shared by the scripts in this directory.
# Source it (". "$(dirname "$0")/lib.sh""); it defines functions and sets
# REPO_ROOT, nothing else.

# shellcheck disable=SC2034 # used by the scripts that source this file
REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

# heading TEXT: a one-line step heading.
heading() { printf '\n==> %s\n' "$*"; }

# info TEXT / die TEXT: messages on stderr, prefixed with the script's name.
info() { printf '%s: %s\n' "$(basename "$0")" "$*" >&2; }
die() {
  printf '%s: error: %s\n' "$(basename "$0")" "$*" >&2
  exit 1
}

# ensure_go: put /usr/local/go/bin on PATH when go is not already there.
ensure_go() {
  if ! command -v go >/dev/null 2>&1 && [ -x /usr/local/go/bin/go ]; then
    export PATH="/usr/local/go/bin:$PATH"
  fi
  command -v go >/dev/null 2>&1 ||
    die "go not found on PATH nor in /usr/local/go/bin; install Go 1.26 (https://go.dev/doc/install)"
}

# need_cmd CMD HINT: die unless CMD is on PATH.
need_cmd() {
  command -v "$1" >/dev/null 2>&1 || die "'$1' not found on PATH; $2"
}

# npm_pack_verified SPEC INTEGRITY DIR: download the npm tarball SPEC
# (name@version) into DIR with "npm pack", check it against the pinned
# INTEGRITY ("sha512-<base64>", as printed by `npm view SPEC dist.integrity`)
# and print the tarball's path.
npm_pack_verified() {
  local spec=$1 want=$2 dir=$3 tgz got
  tgz=$(cd "$dir" && npm pack --silent --loglevel=error "$spec" | tail -n 1) ||
    die "npm pack $spec failed (is the npm registry reachable?)"
  [ -f "$dir/$tgz" ] || die "npm pack $spec did not produce a tarball"
  got=$(node -e '
    const data = require("fs").readFileSync(process.argv[1]);
    console.log("sha512-" + require("crypto").createHash("sha512").update(data).digest("base64"));
  ' "$dir/$tgz")
  [ "$got" = "$want" ] ||
    die "integrity mismatch for $spec: expected $want, got $got"
  printf '%s\n' "$dir/$tgz"
}

# Quiet, reproducible npm: no audit, funding or update messages.
export npm_config_audit=false npm_config_fund=false npm_config_update_notifier=false
