#!/usr/bin/env bash
# Set up everything bokeh-server needs to build, run and test, on Debian 12.
# Every step is skipped when its result is already there, so it is cheap to
# run again (make run and make test call it each time).
#
# usage: scripts/setup.sh
#
#   1. apt packages (only the missing ones; needs root or sudo):
#        libzmq3-dev pkg-config redis-server, chromium and iproute2 (for the
#        browser and multi-host tests),
#        Python 3 with numpy, pandas, flask and requests (the applet host of
#        --script, and the applet tests), build-essential if there is no gcc,
#        nodejs npm if there is no node
#   2. BokehJS 0.8.2 -> build/bokehjs-0.8.2   (scripts/build-bokehjs.sh)
#   3. jQuery + Bootstrap -> build/static     (scripts/fetch-static.sh)
#   4. Go binaries -> bin/                    (go build ./cmd/..., with cgo for ZeroMQ)
#
# Environment:
#   SETUP_CHROMIUM=0   do not install chromium and iproute2 (make run: only tests need them)
#   SETUP_APPLETS=0|1  leave out / add the Python packages of --script applets
#                      (default: as chromium, so make test has them and make run not)
#   SETUP_APT=0        skip the apt step (install the packages yourself)
#   SETUP_GO=0         skip the Go build (make test: scripts/test.sh builds bin/ itself)
#   BOKEHJS_070=1      also build BokehJS 0.7.0 into build/bokehjs-0.7.0
set -euo pipefail
. "$(dirname "$0")/lib.sh"
cd "$REPO_ROOT"
START=$SECONDS

# ---- 1. apt packages --------------------------------------------------------
heading "apt packages"
installed() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q 'install ok installed'; }
if [ "${SETUP_APT:-1}" = 0 ]; then
  echo "skipped (SETUP_APT=0)"
else
  wanted=(libzmq3-dev pkg-config redis-server)
  # The tests' own: chromium for the browser tests, iproute2 for the multi-host test's
  # network namespaces.
  [ "${SETUP_CHROMIUM:-1}" = 0 ] || wanted+=(chromium iproute2)
  # What bokeh 0.8 imports in the applet host (bokeh itself is the user's, see README).
  [ "${SETUP_APPLETS:-${SETUP_CHROMIUM:-1}}" = 0 ] ||
    wanted+=(python3 python3-numpy python3-pandas python3-flask python3-werkzeug python3-jinja2
      python3-requests python3-six python3-dateutil python3-tz)
  command -v gcc >/dev/null 2>&1 || wanted+=(build-essential)
  if ! command -v node >/dev/null 2>&1; then
    wanted+=(nodejs npm)
  elif ! command -v npm >/dev/null 2>&1; then
    die "node is installed but npm is not; install the npm that goes with your node ($(command -v node))"
  fi
  missing=()
  for p in "${wanted[@]}"; do installed "$p" || missing+=("$p"); done
  if [ ${#missing[@]} -eq 0 ]; then
    echo "all there: ${wanted[*]}"
  else
    command -v apt-get >/dev/null 2>&1 ||
      die "apt-get not found: this script supports Debian 12; install ${missing[*]} yourself and rerun with SETUP_APT=0"
    SUDO=()
    if [ "$(id -u)" != 0 ]; then
      command -v sudo >/dev/null 2>&1 || die "installing ${missing[*]} needs root: rerun as root (or install them and use SETUP_APT=0)"
      SUDO=(sudo)
    fi
    echo "installing: ${missing[*]}"
    "${SUDO[@]}" apt-get update -q || die "apt-get update failed"
    "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -q -o Dpkg::Use-Pty=0 --no-install-recommends "${missing[@]}" ||
      die "apt-get install ${missing[*]} failed"
  fi
fi
need_cmd node "install Node.js (>= 18) and npm"
need_cmd npm "install npm"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 18 ? 0 : 1)' ||
  die "node $(node --version) is too old: BokehJS's build needs node >= 18"

# ---- 2. BokehJS ---------------------------------------------------------------
bokehjs_versions=(0.8.2)
[ "${BOKEHJS_070:-0}" = 1 ] && bokehjs_versions+=(0.7.0)
for v in "${bokehjs_versions[@]}"; do
  dir="build/bokehjs-$v"
  heading "BokehJS $v -> $dir"
  if [ -f "$dir/js/bokeh.min.js" ] && [ -f "$dir/BUILD-INFO.txt" ]; then
    echo "already built (rm -rf $dir to rebuild)"
  else
    t=$SECONDS
    scripts/build-bokehjs.sh "$dir" "$v" || die "BokehJS $v build failed"
    echo "built in $((SECONDS - t))s"
  fi
done

# ---- 3. static files ----------------------------------------------------------
heading "jQuery and Bootstrap -> build/static"
if [ -f build/static/jquery.min.js ] && [ -f build/static/STATIC-INFO.txt ]; then
  echo "already there (rm -rf build/static to fetch again)"
else
  scripts/fetch-static.sh build/static || die "fetching the static files failed"
fi

# ---- 4. Go binaries -----------------------------------------------------------
heading "Go binaries -> bin/"
ensure_go
if [ "${SETUP_GO:-1}" = 0 ]; then
  echo "skipped (SETUP_GO=0); $(go version | cut -d' ' -f3)"
else
  [ -d cmd ] || die "no cmd/ directory: nothing to build"
  mkdir -p bin
  CGO_ENABLED=1 go build -o bin/ ./cmd/... ||
    die "go build failed (cgo with libzmq3-dev and pkg-config is needed for github.com/pebbe/zmq4)"
  echo "$(go version | cut -d' ' -f3): $(find bin -maxdepth 1 -type f -printf '%f ')"
fi

heading "setup done in $((SECONDS - START))s"
