#!/usr/bin/env bash
# scripts/deps.sh GROUP...: installs, with apt-get, the Debian 12 packages a
# task needs, skipping what is already there. Groups:
#   build   compiler, CMake, Ninja, GoogleTest, Asio, Boost.Asio and Beast (1.81), OpenSSL,
#           SQLite (library, tests, demo, kvserver), prometheus (its promtool checks the
#           metrics text in a test)
#   kvload  wrk and gnuplot, for scripts/kvload.sh
#   sanit   clang 14 and its runtimes (sanitizers, libFuzzer), valgrind
#   tsa     clang 16, for scripts/thread_safety.sh (its thread-safety analysis is
#           newer than clang 14's)
#   bench   Google Benchmark, libuv, gnuplot, Tokio's crates for the Rust peer,
#           GLib, Qt 6 and oneTBB for their pools' peers
set -euo pipefail

declare -A GROUP=(
  [build]="g++ cmake ninja-build libgtest-dev libgmock-dev libasio-dev libboost1.81-dev libssl-dev libsqlite3-dev coreutils prometheus"
  [kvload]="wrk gnuplot-nox"
  [sanit]="clang-14 libclang-rt-14-dev valgrind"
  [tsa]="clang-16"
  [bench]="libbenchmark-dev libuv1-dev gnuplot-nox librust-tokio-dev libglib2.0-dev qt6-base-dev libtbb-dev"
)

want=()
for g in "$@"; do
  [[ -n "${GROUP[$g]:-}" ]] || { echo "deps.sh: unknown group '$g'" >&2; exit 2; }
  for p in ${GROUP[$g]}; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || want+=("$p")
  done
done
((${#want[@]} == 0)) && exit 0

SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO="sudo"; fi
echo "deps.sh: installing ${want[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${want[@]}" >/dev/null
