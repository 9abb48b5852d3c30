#!/usr/bin/env bash
# Build BokehJS from the sources in the npm package bokehjs@VERSION.
#
# usage: scripts/build-bokehjs.sh OUTPUT_DIR [VERSION]
#
# VERSION is 0.8.2 (default), 0.8.1, 0.8.0 or 0.7.0; BOKEHJS_VERSION=... works
# too (the argument wins).  The package holds only sources (CoffeeScript AMD
# modules, eco templates, less, vendored JS); this script redoes its Gruntfile's
# "deploy" task with the tool versions that the package's devDependency ranges
# resolved to on the release date, all pinned (see below), and the node helper
# scripts/build-bokehjs.js instead of grunt.
#
# Output (nothing else in OUTPUT_DIR is touched; these are replaced):
#   OUTPUT_DIR/js/bokeh.js, js/bokeh.min.js      almond + all modules, sets window.Bokeh
#   OUTPUT_DIR/css/bokeh.css, css/bokeh.min.css  all styles, fonts and icons inlined
#   OUTPUT_DIR/css/images/, css/icons-classic/, images/   images used by widget CSS
#   OUTPUT_DIR/BUILD-INFO.txt                    versions, size and sha256 of every file
#
# It builds in a fresh temporary directory and installs the result at the end,
# so a failed run leaves OUTPUT_DIR as it was; two runs give identical files.
# Needs bash, node (>= 18), npm, tar and the npm registry.
#
# Environment:
#   BOKEHJS_VERSION=0.8.2  version to build (the argument wins)
#   BOKEHJS_SPLITJS=1      also install the unbundled AMD tree (js/config.js,
#                          js/main.js, js/vendor/requirejs/require.js, ...)
#                          that bokeh-server's --splitjs pages load
#   BOKEHJS_KEEP_WORK=1    keep the temporary work directory
set -euo pipefail
. "$(dirname "$0")/lib.sh"

usage() {
  echo "usage: $0 OUTPUT_DIR [VERSION]   (VERSION: 0.8.2 (default), 0.8.1, 0.8.0, 0.7.0)" >&2
  exit 2
}
if [ $# -lt 1 ] || [ $# -gt 2 ] || [ -z "$1" ]; then usage; fi
VERSION=${2:-${BOKEHJS_VERSION:-0.8.2}}

# ---- pinned versions --------------------------------------------------------
# The Gruntfile and the devDependencies are the same in 0.7.0 and 0.8.x:
#   grunt-contrib-coffee ^0.7.0    -> coffee-script ~1.6.2   => 1.6.3 (last 1.6.x)
#   grunt-eco ^0.1.1 (0.1.3)       -> eco ~1.0               => 1.0.3, which needs
#       strscan >=1.0.1            => 1.0.1 (the only release)
#       coffee-script >=1.0.1      => the newest on the release date (own copy):
#           1.8.0 (2014-08-26, + mkdirp 0.3.5), 1.9.0 (2015-01-29), 1.9.1 (2015-02-18)
#   grunt-contrib-less ^0.11.0     -> less ^1.7.0            => 1.7.5 (last 1.x)
#   grunt-contrib-requirejs ^0.4.3 -> requirejs ~2.1.0       => newest 2.1.x then:
#           2.1.15 (2014-09-07), 2.1.16 (2015-02-09); 2.1.17 is from 2015-03-31
#   grunt-contrib-cssmin ^0.6.2    -> clean-css ~1.1.1       => 1.1.7 (+ commander 2.0.0)
COFFEE=1.6.3 ECO=1.0.3 STRSCAN=1.0.1 LESS=1.7.5 CLEANCSS=1.1.7 COMMANDER=2.0.0
case "$VERSION" in
  0.7.0) # released 2014-12-05
    INTEGRITY="sha512-hpyO7YSTQWiR3YHLe2PpBOirqTDaROPYb/0VZYFfXppPgRvWPrDBrvvGsgleH7tnxdm+DGnsHyrElZ9R1qoJhQ=="
    ECO_COFFEE=1.8.0 MKDIRP=0.3.5 REQUIREJS=2.1.15 ;;
  0.8.0) # released 2015-02-16
    INTEGRITY="sha512-wD4FhsOX6U9wO/yd3n8cDCDj3JHy5nDgI5388hKehdkAcTqpFdlry4KIxDRYlTyD/MeW+oe2diKW8LwEXYKYCA=="
    ECO_COFFEE=1.9.0 MKDIRP='' REQUIREJS=2.1.16 ;;
  0.8.1) # released 2015-02-23
    INTEGRITY="sha512-LPMJ53JsfPwwkptmT1oPxmmanTIvemxIuDKqQuvbJOjEzANvu6Ngzs6l3PYkw6rpa+V7Rn7iC2jRa32DWVJk1A=="
    ECO_COFFEE=1.9.1 MKDIRP='' REQUIREJS=2.1.16 ;;
  0.8.2) # released 2015-03-25
    INTEGRITY="sha512-V/WSMnEUz7wxOXQfrG7tS0IQQ4FQ7UZOCjPZpQIz/Ju9O+6iDncBiFPdbYWSu9NclcXVJx/q+U83xNjDRPDbqA=="
    ECO_COFFEE=1.9.1 MKDIRP='' REQUIREJS=2.1.16 ;;
  *)
    echo "$(basename "$0"): unsupported BokehJS version '$VERSION' (supported: 0.8.2 0.8.1 0.8.0 0.7.0)" >&2
    exit 2 ;;
esac

need_cmd node "install Node.js and npm (scripts/setup.sh does)"
need_cmd npm "install npm (scripts/setup.sh does)"
HELPER="$REPO_ROOT/scripts/build-bokehjs.js"

mkdir -p "$1"
OUT=$(cd "$1" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bokehjs-$VERSION.XXXXXX")
cleanup() {
  if [ "${BOKEHJS_KEEP_WORK:-0}" = 1 ]; then info "work directory kept: $WORK"; else rm -rf "$WORK"; fi
}
trap cleanup EXIT

START=$SECONDS
step() { echo "[build-bokehjs $VERSION, $((SECONDS - START))s] $*" >&2; }

# ---- 1. sources -------------------------------------------------------------
step "npm pack bokehjs@$VERSION (sha512 checked)"
TGZ=$(npm_pack_verified "bokehjs@$VERSION" "$INTEGRITY" "$WORK")
mkdir "$WORK/src"
tar --no-same-owner -xzf "$TGZ" -C "$WORK/src"
SRC="$WORK/src/package"

# ---- 2. build tools ---------------------------------------------------------
step "npm install the pinned build tools"
mkdir "$WORK/tools"
if [ -n "$MKDIRP" ]; then # coffee-script 1.8.0 needs mkdirp; 1.9.x has no dependencies
  ECO_COFFEE_PIN="{ \".\": \"$ECO_COFFEE\", \"mkdirp\": \"$MKDIRP\" }"
else
  ECO_COFFEE_PIN="\"$ECO_COFFEE\""
fi
cat >"$WORK/tools/package.json" <<EOF
{
  "name": "bokehjs-$VERSION-build-tools",
  "version": "0.0.0",
  "private": true,
  "dependencies": {
    "coffee-script": "$COFFEE",
    "eco": "$ECO",
    "less": "$LESS",
    "requirejs": "$REQUIREJS",
    "clean-css-1": "npm:clean-css@$CLEANCSS"
  },
  "overrides": {
    "eco": { "coffee-script": $ECO_COFFEE_PIN, "strscan": "$STRSCAN" },
    "commander": "$COMMANDER"
  }
}
EOF
# commander is pinned at the top level of "overrides" (clean-css is its only
# user): npm 9.2, Debian 12's npm, rejects an override under the aliased
# "clean-css-1" ("Invalid comparator: npm:clean-css@1.1.7").
# less 1.7.5's optional dependencies (request, graceful-fs 3, clean-css 2, ...)
# only serve lessc's command-line extras, and graceful-fs 3 does not load on
# node >= 14: leave them out.
(cd "$WORK/tools" && npm install --omit=optional --no-package-lock --loglevel=error >/dev/null) ||
  die "npm install of the build tools failed"
# Exactly these packages, at exactly these versions, and nothing else.
node "$HELPER" check-tools "$WORK/tools/node_modules" \
  ".:coffee-script=$COFFEE" ".:eco=$ECO" ".:less=$LESS" ".:requirejs=$REQUIREJS" \
  ".:clean-css-1=$CLEANCSS" "eco:coffee-script=$ECO_COFFEE" "eco:strscan=$STRSCAN" \
  ${MKDIRP:+"eco/node_modules/coffee-script:mkdirp=$MKDIRP"} \
  "clean-css-1:commander=$COMMANDER"

# ---- 3. compile and bundle --------------------------------------------------
step "compile coffee, eco and less; bundle with r.js (plain and uglify2); cssmin"
node "$HELPER" build "$SRC" "$WORK/tools/node_modules" "$WORK/build"
DIST="$WORK/build/dist"
node "$HELPER" smoke "$VERSION" "$DIST/js/bokeh.js" "$DIST/js/bokeh.min.js"
if [ "${BOKEHJS_SPLITJS:-0}" = 1 ]; then
  step "add the unbundled AMD tree to js/ (BOKEHJS_SPLITJS=1)"
  cp -R "$WORK/build/js/." "$DIST/js/"
fi

# ---- 4. install -------------------------------------------------------------
step "install into $OUT"
{
  echo "BokehJS $VERSION built from npm bokehjs@$VERSION ($INTEGRITY)"
  echo "tools: coffee-script@$COFFEE eco@$ECO (coffee-script@$ECO_COFFEE${MKDIRP:+ mkdirp@$MKDIRP})" \
    "strscan@$STRSCAN less@$LESS requirejs@$REQUIREJS clean-css@$CLEANCSS commander@$COMMANDER"
  echo "node $(node --version), npm $(npm --version)"
  echo
  (cd "$DIST" && find . -type f | sed 's#^\./##' | LC_ALL=C sort | while read -r f; do
    printf '%10d  %s  %s\n' "$(wc -c <"$f")" "$(sha256sum "$f" | cut -c1-64)" "$f"
  done)
} >"$WORK/BUILD-INFO.txt"
# BUILD-INFO.txt goes in last: its presence marks a complete install.
rm -rf "$OUT/BUILD-INFO.txt" "$OUT/js" "$OUT/css" "$OUT/images"
cp -R "$DIST/." "$OUT/"
cp "$WORK/BUILD-INFO.txt" "$OUT/BUILD-INFO.txt"
step "done"
grep -E ' (js|css)/bokeh(\.min)?\.(js|css)$' "$OUT/BUILD-INFO.txt" >&2
