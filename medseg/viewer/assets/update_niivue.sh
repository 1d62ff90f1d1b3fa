#!/usr/bin/env bash
# Replace niivue.umd.js with the prebuilt browser (UMD) bundle of one NiiVue release from the npm registry.
# Usage: medseg/viewer/assets/update_niivue.sh [VERSION]   (default: the version pinned below)
set -euo pipefail
VERSION="${1:-0.69.0}"
HERE="$(cd "$(dirname "$0")" && pwd)"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
cd "$WORK"
npm pack --silent "@niivue/niivue@${VERSION}" >/dev/null
tar xzf niivue-niivue-"${VERSION}".tgz
test -f package/dist/niivue.umd.js || { echo "no dist/niivue.umd.js in ${VERSION}: bundle package/build/index.js with esbuild --format=iife --global-name=niivue" >&2; exit 1; }
cp package/dist/niivue.umd.js "$HERE/niivue.umd.js"
echo "niivue ${VERSION}: $(wc -c < "$HERE/niivue.umd.js") bytes, $(gzip -c "$HERE/niivue.umd.js" | wc -c) gzipped"
sha256sum "$HERE/niivue.umd.js"
