#!/usr/bin/env bash
# blockpool::dns against Asio's resolver (issue 18): N lookups that each take
# 50 ms (bench/dns/slow_getaddrinfo preloaded), issued at once from one
# io_context. Builds the two targets in build-bench/ (Release) and prints the
# table that bench/results/dns.md records.
#
#   bench/dns/run.sh [rounds]      # best of `rounds` (default 3) per N
#   BLOCKPOOL_SLOW_GAI_MS=20 bench/dns/run.sh
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
build="${BLOCKPOOL_BENCH_BUILD_DIR:-$root/build-bench}"
jobs="${BLOCKPOOL_BENCH_JOBS:-2}"

cmake -S "$root" -B "$build" -DCMAKE_BUILD_TYPE=Release -DBLOCKPOOL_BUILD_TESTS=OFF \
  -DBLOCKPOOL_BUILD_EXAMPLES=OFF -DBLOCKPOOL_BUILD_BENCH=ON >/dev/null
cmake --build "$build" -j"$jobs" --target dns_bench slow_getaddrinfo
echo "== machine: $(nproc) cores, load: $(cut -d' ' -f1-3 /proc/loadavg)"
LD_PRELOAD="$build/bench/libslow_getaddrinfo.so" "$build/bench/dns_bench" "$@"
