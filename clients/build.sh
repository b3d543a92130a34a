#!/usr/bin/env bash
# Rebuilds every committed JavaScript output from its sources, reproducibly:
#   1. the protobuf-es code generated from proto/ (and proto-vendor/google/rpc)
#      into clients/typescript/gen, by `buf generate` with the repository's
#      buf.gen.yaml (local plugins only);
#   2. the call board's script: clients/web/board/ → src/board/assets/board.js,
#      bundled by esbuild, which `switchboard serve` embeds (with index.html
#      and board.css, which it embeds from clients/web/board/ directly);
#   3. the browser relay: clients/web/relay/ → clients/web/dist/switchboard-relay.js,
#      the one file integrators copy into a static resource.
#
#   clients/build.sh            rebuild the committed files
#   clients/build.sh --check    build into a temp dir and fail if anything
#                               committed differs (scripts/test runs this)
#
# Needs `npm ci --prefix clients` first (buf, protoc-gen-es and esbuild come
# from clients/package-lock.json).
set -euo pipefail
clients="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$clients/.." && pwd)"
bin="$clients/node_modules/.bin"
for tool in buf protoc-gen-es esbuild; do
  [ -x "$bin/$tool" ] || { echo "$tool missing: run 'npm ci --prefix clients' first" >&2; exit 1; }
done

out="$root"
check=false
if [ "${1:-}" = "--check" ]; then
  check=true
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi

# 1. Generated code (buf writes below --output, at the template's paths).
if $check; then
  (cd "$root" && "$bin/buf" generate --output "$out")
else
  rm -rf "$root/clients/typescript/gen"
  (cd "$root" && "$bin/buf" generate)
fi

# 2 and 3. Bundles, from the committed generated code (which --check has just
# compared with a fresh generation, so a bundle built from either is the same).
mkdir -p "$out/src/board/assets" "$out/clients/web/dist"
common=(--bundle --format=esm --target=es2022 --minify --legal-comments=none --charset=utf8 --log-level=warning)
(cd "$clients/web" && "$bin/esbuild" board/main.js "${common[@]}" --outfile="$out/src/board/assets/board.js")
(cd "$clients/web" && "$bin/esbuild" relay/index.js "${common[@]}" --outfile="$out/clients/web/dist/switchboard-relay.js")

if $check; then
  status=0
  diff -r "$out/clients/typescript/gen" "$root/clients/typescript/gen" || status=1
  diff -r "$out/src/board/assets" "$root/src/board/assets" || status=1
  diff "$out/clients/web/dist/switchboard-relay.js" "$root/clients/web/dist/switchboard-relay.js" || status=1
  if [ $status -ne 0 ]; then
    echo "committed JavaScript outputs differ from a fresh build: run clients/build.sh and commit" >&2
    exit 1
  fi
  echo "generated code and browser bundles match their sources"
fi
