#!/usr/bin/env bash
# scripts/sanitize.sh: build and run the whole ctest suite under
# ThreadSanitizer, then under AddressSanitizer+UndefinedBehaviorSanitizer
# (LeakSanitizer included: detect_leaks=1). Any report fails the run.
#
#   scripts/sanitize.sh [thread|address|all]      (default: all)
# Env: CXX (default: clang++ for TSAN, g++ for ASan+UBSan), JOBS (default 2),
#      BLOCKPOOL_STRESS_SECONDS (default 4 under sanitizers),
#      BUILD_TYPE (default RelWithDebInfo).
# Build dirs: build-rel-tsan, build-rel-asan.
set -euo pipefail
cd "$(dirname "$0")/.."
what="${1:-all}"
JOBS="${JOBS:-2}"
BUILD_TYPE="${BUILD_TYPE:-RelWithDebInfo}"
export BLOCKPOOL_STRESS_SECONDS="${BLOCKPOOL_STRESS_SECONDS:-4}"

need() { command -v "$1" >/dev/null 2>&1; }
apt_install() {
  if need apt-get && [ "$(id -u)" = 0 ]; then
    (apt-get update -qq || true) && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  else
    echo "sanitize.sh: missing $*; install it" >&2; return 1
  fi
}
need cmake || apt_install cmake
need ninja || apt_install ninja-build || true
[ -f /usr/include/gtest/gtest.h ] || apt_install libgtest-dev
# Compilers: TSAN with clang (falls back to g++), ASan+UBSan with g++ 12
# (clang 14 fails on coroutine code under ASan at -O2: "Cannot represent a
# difference across sections"). CXX overrides both.
if ! need clang++ || ! ls /usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.tsan-x86_64.a >/dev/null 2>&1; then
  apt_install clang libclang-rt-14-dev || true
fi
need g++ || apt_install g++
if need clang++; then TSAN_CXX="${CXX:-clang++}"; else TSAN_CXX="${CXX:-g++}"; fi
ASAN_CXX="${CXX:-g++}"
CXX="$TSAN_CXX"  # for the TSAN probe
gen=(); need ninja && gen=(-G Ninja)

# ThreadSanitizer needs a narrow ASLR layout on newer kernels ("unexpected
# memory mapping"). Probe a tiny TSAN program; fall back to lowering
# vm.mmap_rnd_bits (root) or to running every test under setarch -R.
TSAN_WRAP=()
tsan_probe() {
  local d; d="$(mktemp -d)"
  printf '#include <thread>\nint main(){int x=0;std::thread t([&]{x=1;});t.join();return x-1;}\n' > "$d/p.cpp"
  "$CXX" -fsanitize=thread -pthread "$d/p.cpp" -o "$d/p" 2>/dev/null || { rm -rf "$d"; return 2; }
  if TSAN_OPTIONS=halt_on_error=1 "$d/p" >/dev/null 2>&1; then rm -rf "$d"; return 0; fi
  if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/mmap_rnd_bits ] && sysctl -w vm.mmap_rnd_bits=28 >/dev/null 2>&1 \
     && TSAN_OPTIONS=halt_on_error=1 "$d/p" >/dev/null 2>&1; then
    echo "sanitize.sh: TSAN needed vm.mmap_rnd_bits=28 (set)"; rm -rf "$d"; return 0
  fi
  if setarch "$(uname -m)" -R "$d/p" >/dev/null 2>&1; then
    echo "sanitize.sh: TSAN needs ASLR off: running tests under setarch -R"
    TSAN_WRAP=(setarch "$(uname -m)" -R); rm -rf "$d"; return 0
  fi
  rm -rf "$d"; return 1
}

run_suite() {  # name sanitizers compiler
  local name="$1" san="$2" CXX="$3" dir="build-rel-$1"
  local t0=$SECONDS
  cmake -S . -B "$dir" "${gen[@]}" -DCMAKE_BUILD_TYPE="$BUILD_TYPE" -DCMAKE_CXX_COMPILER="$CXX" \
    -DBLOCKPOOL_SANITIZE="$san" -DBLOCKPOOL_BUILD_EXAMPLES=OFF -DBLOCKPOOL_BUILD_BENCH=OFF >/dev/null
  cmake --build "$dir" -j "$JOBS"
  local rc=0
  if [ ${#TSAN_WRAP[@]} -gt 0 ] && [ "$name" = tsan ]; then
    # ctest cannot prefix a launcher after configure; run ctest itself with ASLR off
    # (the setting is inherited by every test process).
    "${TSAN_WRAP[@]}" ctest --test-dir "$dir" --output-on-failure -j "$JOBS" -LE load || rc=$?
  else
    ctest --test-dir "$dir" --output-on-failure -j "$JOBS" -LE load || rc=$?
  fi
  echo "sanitize.sh: $name suite ($CXX) finished in $((SECONDS - t0)) s, rc=$rc"
  return $rc
}

status=0
if [ "$what" = all ] || [ "$what" = thread ]; then
  tsan_probe || { echo "sanitize.sh: ThreadSanitizer cannot run on this host" >&2; exit 1; }
  export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1:exitcode=66:suppressions=$PWD/scripts/tsan.supp"
  run_suite tsan thread "$TSAN_CXX" || status=1
  unset TSAN_OPTIONS
fi
if [ "$what" = all ] || [ "$what" = address ]; then
  export ASAN_OPTIONS="detect_leaks=1:halt_on_error=1:abort_on_error=0:detect_stack_use_after_return=1"
  export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
  run_suite asan address,undefined "$ASAN_CXX" || status=1
fi
exit $status
