#!/usr/bin/env bash
# scripts/thread_safety.sh: checks the locking rules at compile time. Builds
# the library, the Asio layer, the tests and the examples with clang and
# -Wthread-safety -Werror (src/thread_annotations.hpp says what is checked);
# any warning fails the run.
#
#   scripts/thread_safety.sh
# Env: CXX (default: clang++-16, installed through scripts/deps.sh tsa; else
#      clang++-14 from group sanit), JOBS (default 2).
# Build dir: build-tsa-clang.
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"
dir=build-tsa-clang
flags="-Wthread-safety -Wthread-safety-beta -Werror"

need() { command -v "$1" >/dev/null 2>&1; }
bash scripts/deps.sh build
cxx="${CXX:-}"
if [ -z "$cxx" ]; then
  if need clang++-16 || bash scripts/deps.sh tsa; then
    cxx=clang++-16
  else
    echo "thread_safety.sh: clang 16 could not be installed; using clang 14" >&2
    bash scripts/deps.sh sanit
    cxx=clang++-14
  fi
fi
need "$cxx" || { echo "thread_safety.sh: no compiler '$cxx'" >&2; exit 1; }

# The analysis is live: a guarded field touched without its lock must fail.
probe="$(mktemp -d)"
trap 'rm -rf "$probe"' EXIT
cat > "$probe/unlocked.cpp" <<'CPP'
#include "thread_annotations.hpp"
struct S {
  blockpool::detail::Mutex mu;
  int n BLOCKPOOL_GUARDED_BY(mu) = 0;
  void locked() { blockpool::detail::MutexLock lk(mu); ++n; }
  void unlocked() { ++n; }
};
int main() { S s; s.locked(); s.unlocked(); }
CPP
if "$cxx" -std=c++20 -fsyntax-only $flags -Isrc "$probe/unlocked.cpp" 2>"$probe/err"; then
  echo "thread_safety.sh: $cxx accepted an unlocked access: the analysis is not running" >&2
  exit 1
fi
grep -q "requires holding mutex" "$probe/err" || { cat "$probe/err" >&2; exit 1; }

gen=(); need ninja && gen=(-G Ninja)
cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_CXX_FLAGS="$flags" -DBLOCKPOOL_WARNINGS_AS_ERRORS=ON >/dev/null
log="$probe/build.log"
rc=0
cmake --build "$dir" -j "$JOBS" 2>&1 | tee "$log" || rc=$?
# -Werror turns every compiler warning into an error; anything else that
# still says "warning:" fails the check too.
if [ "$rc" -ne 0 ] || grep -q "warning:" "$log"; then
  echo "thread_safety.sh: FAILED ($cxx $flags)" >&2
  exit 1
fi
echo "thread_safety.sh: clean ($cxx $flags)"
