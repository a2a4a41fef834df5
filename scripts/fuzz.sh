#!/usr/bin/env bash
# scripts/fuzz.sh: build the libFuzzer target (clang, ASan+UBSan) and fuzz for
# a bounded time.
#   scripts/fuzz.sh [seconds=60] [extra libFuzzer flags...]
# The seed corpus fuzz/corpus/ is read, never written: new inputs go to
# build-fuzz/corpus. Crashes are written to build-fuzz/artifacts/; reproduce one
# with  build-fuzz/fuzz/pool_ops_fuzzer build-fuzz/artifacts/crash-<hash>
# Longer runs: scripts/fuzz.sh 3600 -jobs=2 -workers=2
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-60}"; shift || true
JOBS="${JOBS:-2}"
need() { command -v "$1" >/dev/null 2>&1; }
if ! need clang++ || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && need apt-get; then
    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang libclang-rt-14-dev
  else
    echo "fuzz.sh: needs clang and libFuzzer (libclang-rt-14-dev)" >&2; exit 1
  fi
fi
gen=(); need ninja && gen=(-G Ninja)
cmake -S . -B build-fuzz "${gen[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
  -DBLOCKPOOL_SANITIZE=address,undefined -DBLOCKPOOL_BUILD_FUZZ=ON \
  -DBLOCKPOOL_BUILD_TESTS=OFF -DBLOCKPOOL_BUILD_EXAMPLES=OFF -DBLOCKPOOL_BUILD_BENCH=OFF >/dev/null
cmake --build build-fuzz -j "$JOBS" --target pool_ops_fuzzer
mkdir -p build-fuzz/corpus build-fuzz/artifacts
export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
t0=$SECONDS
set +e +o pipefail
build-fuzz/fuzz/pool_ops_fuzzer -max_total_time="$secs" -max_len=256 -timeout=120 \
  -rss_limit_mb=4096 -print_final_stats=1 -artifact_prefix=build-fuzz/artifacts/ "$@" \
  build-fuzz/corpus fuzz/corpus 2>&1 | tee build-fuzz/fuzz.log | grep -vE '^#[0-9]+.*(NEW|REDUCE|pulse)'
rc=${PIPESTATUS[0]}
set -e
echo "fuzz.sh: ran $((SECONDS - t0)) s, rc=$rc; $(grep -E 'stat::number_of_executed_units' build-fuzz/fuzz.log || true)"
exit "$rc"
