#!/bin/sh
# Refreshes vendor/scalar-api-reference/standalone.js from the npm package @scalar/api-reference (see the README there).
set -eu
version=${1:?usage: scripts/vendor-scalar.sh <version of @scalar/api-reference>}
root=$(cd "$(dirname "$0")/.." && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
(cd "$scratch" && npm pack --silent "@scalar/api-reference@$version" >/dev/null && tar xzf scalar-api-reference-*.tgz package/dist/browser/standalone.js)
cp "$scratch/package/dist/browser/standalone.js" "$root/vendor/scalar-api-reference/standalone.js"
echo "$version" > "$root/vendor/scalar-api-reference/VERSION"
echo "vendored @scalar/api-reference $version"
