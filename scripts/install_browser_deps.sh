#!/usr/bin/env bash
# Installs what the browser test needs, when missing (idempotent):
#   * Debian's `chromium` (Playwright's own browser download does not work offline), and
#   * the viewer's npm map libraries (versions in static/vendor.json) into a cache folder,
#     default ~/.cache/titiler-otsu-test/npm (override: TITILER_OTSU_TEST_NPM_DIR).
# The browser test serves those files in place of the CDN; nothing is committed.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
  echo "need root to run: $*" >&2; return 1; fi; }
apt_updated=""
apt_install() {
  [ -n "$apt_updated" ] || { as_root apt-get update -q >/dev/null; apt_updated=1; }
  DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -q --no-install-recommends "$@" >/dev/null
}

if ! command -v chromium >/dev/null 2>&1; then
  echo "installing Debian chromium..." >&2
  apt_install chromium
fi
if ! command -v npm >/dev/null 2>&1; then
  echo "installing npm..." >&2
  apt_install nodejs npm
fi

npm_dir="${TITILER_OTSU_TEST_NPM_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/titiler-otsu-test/npm}"
specs=$(node -e '
  const v = require(process.argv[1]);
  console.log(Object.entries(v).map(([n, p]) => `${n}@${p.version}`).join(" "));
' "$PWD/static/vendor.json")
missing=""
for spec in $specs; do
  name="${spec%@*}"; version="${spec##*@}"
  pkg="$npm_dir/node_modules/$name/package.json"
  if [ ! -f "$pkg" ] || [ "$(node -p "require('$pkg').version")" != "$version" ]; then missing="$missing $spec"; fi
done
if [ -n "$missing" ]; then
  echo "npm install into $npm_dir:$missing" >&2
  mkdir -p "$npm_dir"
  npm install --prefix "$npm_dir" --no-save --no-audit --no-fund --loglevel=error $specs >&2
fi
echo "$npm_dir/node_modules"
