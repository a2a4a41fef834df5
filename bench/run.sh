#!/usr/bin/env bash
# The comparative benchmark in one command:
#
#   bench/run.sh            # full run (~10-12 min on 2 cores): medians of 5 runs
#   bench/run.sh --quick    # every peer x scenario once, reduced sizes (smoke check)
#   bench/run.sh --no-micro # skip the Google Benchmark micro-benchmarks
#   bench/run.sh --matrix   # the workload matrix instead (bench/matrix.py, ~17 min on
#                           # 2 cores): every peer on 60 scenario variants; no micro
#   bench/run.sh --matrix --quick   # the matrix once, reduced sizes (~2.5 min)
#
# Installs what it needs with apt-get (Debian packages only), builds blockpool
# and the C++ peers (CMake, build-bench/, Release), the Tokio peer (cargo,
# offline, against Debian's librust-*-dev crates), runs bench/driver.py, then
# the micro-benchmarks (or, with --matrix, bench/matrix.py). Results:
# bench/results/. Other arguments go to driver.py (or matrix.py).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"
build="${BLOCKPOOL_BENCH_BUILD_DIR:-$root/build-bench}"
jobs="${BLOCKPOOL_BENCH_JOBS:-2}"

quick=0
micro=1
matrix=0
driver_args=()
for a in "$@"; do
  case "$a" in
    --quick) quick=1; driver_args+=(--quick) ;;
    --no-micro) micro=0 ;;
    --matrix) matrix=1; micro=0 ;;
    *) driver_args+=("$a") ;;
  esac
done

# ---- dependencies (Debian packages) -------------------------------------------
need=()
for pkg in cmake g++ pkg-config libasio-dev libuv1-dev libbenchmark-dev gnuplot-nox \
           librust-tokio-dev librust-libc-dev libglib2.0-dev qt6-base-dev libtbb-dev; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
command -v python3 >/dev/null || need+=(python3)
command -v taskset >/dev/null || need+=(util-linux)  # the matrix's pinned cells
if ((${#need[@]})); then
  echo "== apt-get install ${need[*]}"
  sudo_=""
  [[ $(id -u) -ne 0 ]] && sudo_="sudo"
  $sudo_ apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_ apt-get install -y -qq "${need[@]}"
fi
if ! command -v cargo >/dev/null; then
  for c in "$HOME/.cargo/bin" /usr/local/cargo/bin; do
    [[ -x "$c/cargo" ]] && export PATH="$c:$PATH" && break
  done
fi
if ! command -v cargo >/dev/null; then
  echo "== cargo not found: apt-get install cargo"
  DEBIAN_FRONTEND=noninteractive ${sudo_:-} apt-get install -y -qq cargo
fi

# ---- build -------------------------------------------------------------------------------
echo "== cmake build ($build)"
cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBLOCKPOOL_BUILD_TESTS=OFF \
  -DBLOCKPOOL_BUILD_EXAMPLES=OFF -DBLOCKPOOL_BUILD_BENCH=ON >/dev/null
targets=(blockpool_bench asio_pool_bench uv_bench std_async_bench glib_bench glib4_bench qt_bench
         qt128_bench tbb_bench)
((micro)) && targets+=(blockpool_micro)
cmake --build "$build" -j"$jobs" --target "${targets[@]}"

echo "== cargo build (offline, Debian crates)"
(cd "$here/tokio" && cargo build --release --offline -q)
tokio_bin="$here/tokio/target/release/tokio_bench"

# ---- run ----------------------------------------------------------------------------------
echo "== machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
status=0
if ((matrix)); then
  python3 "$here/matrix.py" --bin "$build/bench" --tokio "$tokio_bin" "${driver_args[@]}" || status=$?
else
  python3 "$here/driver.py" --bin "$build/bench" --tokio "$tokio_bin" "${driver_args[@]}" || status=$?
fi

if ((micro)); then
  echo "== micro-benchmarks (Google Benchmark)"
  out="$here/results/micro.txt"
  min_time=0.5
  if ((quick)); then out="$here/results/quick-micro.txt"; min_time=0.01; fi
  "$build/bench/blockpool_micro" --benchmark_min_time="$min_time" 2>&1 | tee "$out"
fi
exit "$status"
