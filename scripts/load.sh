#!/usr/bin/env bash
# scripts/load.sh: the load program (1M tasks, 512 threads blocked at once at
# the peak, RSS back near its start after keep-alive). Not part of the
# default ctest run (label "load", registered only with -DBLOCKPOOL_LOAD_TESTS=ON).
#   scripts/load.sh [total_tasks=1000000] [blocked=512]
set -euo pipefail
cd "$(dirname "$0")/.."
gen=(); command -v ninja >/dev/null 2>&1 && gen=(-G Ninja)
cmake -S . -B build-rel "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLOCKPOOL_SANITIZE= \
  -DBLOCKPOOL_BUILD_EXAMPLES=OFF -DBLOCKPOOL_LOAD_TESTS=ON >/dev/null
cmake --build build-rel -j "${JOBS:-2}" --target load_test
build-rel/tests/load_test "$@"
