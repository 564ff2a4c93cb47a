#!/bin/sh
# Fetches the Scalar API reference browser bundle that GET /docs serves, so
# the docs work with no internet access. Run through `go generate ./api/...`.
#
# The version and the registry's integrity hash are pinned together: a
# different tarball under the same version is refused. To upgrade, set both
# from `npm view @scalar/api-reference@<version> version dist.integrity`.
set -eu

version=1.76.0
integrity=sha512-pjqwnzmA9YK3ZX+IZSICMsywm4qI6HLSngR2py9H6TvFApHHuJjkTAd+gFJfnqJDzJuro8k7ji6JCtJ2U+Byng==

dest=$(cd "$(dirname "$0")/scalar" && pwd)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT INT TERM

cd "$tmp"
npm pack --silent "@scalar/api-reference@$version" >/dev/null
tarball=scalar-api-reference-$version.tgz
got=sha512-$(node -e 'const c=require("crypto"),f=require("fs");process.stdout.write(c.createHash("sha512").update(f.readFileSync(process.argv[1])).digest("base64"))' "$tarball")
if [ "$got" != "$integrity" ]; then
	echo "fetch-scalar: $tarball has integrity $got, expected $integrity" >&2
	exit 1
fi
tar -xzf "$tarball" package/dist/browser/standalone.js
# The source map is not shipped; without this line browsers would ask for it
# and log a 404.
sed '/^\/\/# sourceMappingURL=/d' package/dist/browser/standalone.js >"$dest/standalone.js.part"
mv "$dest/standalone.js.part" "$dest/standalone.js"
echo "fetch-scalar: wrote $dest/standalone.js (@scalar/api-reference $version)"
