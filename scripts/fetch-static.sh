#!/usr/bin/env bash
# Fetch the third-party files that bokeh-server's own pages load from /static/
# (jQuery and Bootstrap 3), from the npm registry, with pinned versions and
# checked tarballs.
#
# usage: scripts/fetch-static.sh OUTPUT_DIR
#
# Output (these are replaced; nothing else in OUTPUT_DIR is touched):
#   OUTPUT_DIR/jquery.min.js, jquery.min.map
#   OUTPUT_DIR/bootstrap/css/bootstrap.min.css (+ bootstrap.css, bootstrap-theme*.css)
#   OUTPUT_DIR/bootstrap/js/bootstrap.min.js (+ bootstrap.js)
#   OUTPUT_DIR/bootstrap/fonts/glyphicons-halflings-regular.{eot,svg,ttf,woff,woff2}
#   OUTPUT_DIR/STATIC-INFO.txt   versions, size and sha256 of every file
#
# These files are downloaded, never committed.
set -euo pipefail
. "$(dirname "$0")/lib.sh"

if [ $# -ne 1 ] || [ -z "$1" ]; then
  echo "usage: $0 OUTPUT_DIR" >&2
  exit 2
fi

# jQuery 1.11.1 is the version BokehJS 0.7/0.8 bundles; Bootstrap 3.3.4 is from
# 2015-03 like bokeh 0.8.2.  Integrity values are `npm view PKG@VER dist.integrity`.
JQUERY=1.11.1
JQUERY_INTEGRITY="sha512-vQfIKd5rOo2OVWkGQpcO16VRebvOiY801IzUiO6Yo89cRraqO+XE0BhvURLubLfla1GnifhLy/fGkcJ0k9kGog=="
BOOTSTRAP=3.3.4
BOOTSTRAP_INTEGRITY="sha512-tfnBKZoAnTXbBCvpzfF6gsDDdTdNbSbsEYnZ8mi+MOVg8Cgb1bfM9GRvIJdgN9aMRbTlqNzp0EJNJ5B2X6iwzg=="

need_cmd node "install Node.js and npm (scripts/setup.sh does)"
need_cmd npm "install npm (scripts/setup.sh does)"

mkdir -p "$1"
OUT=$(cd "$1" && pwd)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/bokeh-static.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

info "npm pack jquery@$JQUERY bootstrap@$BOOTSTRAP (sha512 checked)"
JQUERY_TGZ=$(npm_pack_verified "jquery@$JQUERY" "$JQUERY_INTEGRITY" "$WORK")
BOOTSTRAP_TGZ=$(npm_pack_verified "bootstrap@$BOOTSTRAP" "$BOOTSTRAP_INTEGRITY" "$WORK")
mkdir "$WORK/jquery" "$WORK/bootstrap"
tar --no-same-owner -xzf "$JQUERY_TGZ" -C "$WORK/jquery"
tar --no-same-owner -xzf "$BOOTSTRAP_TGZ" -C "$WORK/bootstrap"

# Lay the files out in a staging directory, then install.
STAGE="$WORK/static"
mkdir -p "$STAGE/bootstrap"
cp "$WORK/jquery/package/dist/jquery.min.js" "$WORK/jquery/package/dist/jquery.min.map" "$STAGE/"
for d in css js fonts; do
  mkdir "$STAGE/bootstrap/$d"
  cp "$WORK/bootstrap/package/dist/$d"/* "$STAGE/bootstrap/$d/"
done
rm -f "$STAGE/bootstrap/js/npm.js" # the CommonJS entry point, not for pages
for f in jquery.min.js bootstrap/css/bootstrap.min.css bootstrap/js/bootstrap.min.js \
  bootstrap/fonts/glyphicons-halflings-regular.woff; do
  [ -s "$STAGE/$f" ] || die "$f missing from the npm packages"
done
{
  echo "jquery@$JQUERY ($JQUERY_INTEGRITY)"
  echo "bootstrap@$BOOTSTRAP ($BOOTSTRAP_INTEGRITY)"
  echo
  (cd "$STAGE" && find . -type f | sed 's#^\./##' | LC_ALL=C sort | while read -r f; do
    printf '%10d  %s  %s\n' "$(wc -c <"$f")" "$(sha256sum "$f" | cut -c1-64)" "$f"
  done)
} >"$WORK/STATIC-INFO.txt"

# STATIC-INFO.txt goes in last: its presence marks a complete install.
rm -rf "$OUT/STATIC-INFO.txt" "$OUT/jquery.min.js" "$OUT/jquery.min.map" "$OUT/bootstrap"
cp -R "$STAGE/." "$OUT/"
cp "$WORK/STATIC-INFO.txt" "$OUT/"
info "installed into $OUT"
