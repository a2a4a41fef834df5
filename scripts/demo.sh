#!/usr/bin/env bash
# scripts/demo.sh: builds and runs the demo: dirhash hashes /usr/include with
# blockpool tasks from an Asio event loop (and reports the loop's lag), then
# the same work inline on the loop for comparison.
# Usage: bash scripts/demo.sh [DIR]   (installs its own packages)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" >/dev/null
# Only the demo and what it links (the library), not the test suite: the
# dirhash target exists when Asio and OpenSSL were found, basics always.
if cmake --build "$BUILD_DIR" --target help | grep '^dirhash:' >/dev/null; then
  cmake --build "$BUILD_DIR" --target dirhash -j"$(nproc)"
else
  cmake --build "$BUILD_DIR" --target basics -j"$(nproc)"
fi
if [[ -x "$BUILD_DIR/examples/dirhash/dirhash" ]]; then
  dir=${1:-/usr/include}
  echo "== dirhash $dir (blockpool) ==" >&2
  "$BUILD_DIR/examples/dirhash/dirhash" "$dir" > /tmp/dirhash.sha256 || true
  echo "== sha256sum -c agrees: $(sha256sum --quiet -c /tmp/dirhash.sha256 >/dev/null 2>&1 && echo yes || echo NO) ==" >&2
  echo "== dirhash --inline $dir (same work on the loop thread) ==" >&2
  "$BUILD_DIR/examples/dirhash/dirhash" --inline "$dir" > /dev/null || true
else
  "$BUILD_DIR/examples/basics"
fi
