#!/usr/bin/env bash
# scripts/test.sh: builds blockpool and runs the whole test suite.
# Usage: bash scripts/test.sh   (from anywhere; installs its own packages)
# Env: BUILD_DIR (default build), CMAKE_BUILD_TYPE (default RelWithDebInfo),
#      CXX (compiler), CTEST_ARGS (extra ctest arguments).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh build
BUILD_DIR=${BUILD_DIR:-build}
cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE="${CMAKE_BUILD_TYPE:-RelWithDebInfo}" \
  -DBLOCKPOOL_WARNINGS_AS_ERRORS=ON ${CMAKE_ARGS:-}
cmake --build "$BUILD_DIR" -j"$(nproc)"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j"$(nproc)" -LE "load" ${CTEST_ARGS:-}
