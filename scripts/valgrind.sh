#!/usr/bin/env bash
# scripts/valgrind.sh: run the test binaries under valgrind memcheck; any
# definite or possible leak, or any memory error, fails the run. The stress
# binary runs with a short budget (valgrind serialises threads); the load
# program is not run. Threads retired by keep-alive are included (the
# keep-alive and stress tests retire threads).
#   scripts/valgrind.sh            (build dir: build-rel, RelWithDebInfo, g++)
# Env: BLOCKPOOL_STRESS_SECONDS (default 1 here), JOBS (default 2).
set -euo pipefail
cd "$(dirname "$0")/.."
JOBS="${JOBS:-2}"
export BLOCKPOOL_STRESS_SECONDS="${BLOCKPOOL_STRESS_SECONDS:-1}"
need() { command -v "$1" >/dev/null 2>&1; }
if ! need valgrind; then
  if [ "$(id -u)" = 0 ] && need apt-get; then
    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind
  else
    echo "valgrind.sh: valgrind is not installed" >&2; exit 1
  fi
fi
gen=(); need ninja && gen=(-G Ninja)
cmake -S . -B build-rel "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DBLOCKPOOL_SANITIZE= \
  -DBLOCKPOOL_BUILD_EXAMPLES=OFF >/dev/null
cmake --build build-rel -j "$JOBS"
t0=$SECONDS
status=0
for bin in build-rel/tests/*_test; do
  name="$(basename "$bin")"
  [ -x "$bin" ] || continue
  case "$name" in load_test) continue ;; esac
  t1=$SECONDS
  extra=()
  # The fault_alloc tests define their own operator new (malloc-based,
  # fault-injecting, tests/failing_new.hpp): keep valgrind from replacing it
  # (it still sees the malloc/free underneath).
  case "$name" in
    fault_alloc_test | asio_fault_alloc_test | asio_fault_alloc_boost_test) extra=(--soname-synonyms=somalloc=nouserintercepts) ;;
  esac
  if timeout 600 valgrind "${extra[@]}" --tool=memcheck --leak-check=full --show-leak-kinds=definite,possible \
      --errors-for-leak-kinds=definite,possible --error-exitcode=1 --fair-sched=yes \
      --log-file="build-rel/valgrind-$name.log" "$bin" --gtest_brief=1 >"build-rel/valgrind-$name.out" 2>&1; then
    echo "valgrind.sh: $name clean ($((SECONDS - t1)) s)"
  else
    echo "valgrind.sh: $name FAILED ($((SECONDS - t1)) s); see build-rel/valgrind-$name.log"
    tail -30 "build-rel/valgrind-$name.log"; tail -30 "build-rel/valgrind-$name.out"
    status=1
  fi
done
echo "valgrind.sh: finished in $((SECONDS - t0)) s, status=$status"
exit $status
