#!/usr/bin/env python3
"""A/B comparison of peer builds on one scenario, from one process.

    bench/ab.py <scenario> <runs> <binary> [<binary> ...]

<scenario> is the benchmark's command line, e.g. flood, or in quotes with a
matrix cell's options: "paced --order before --long-ms 50 --long-every 10".

A binary may be given as VAR=VALUE[,VAR=VALUE...]:path to run it with those
environment variables set, e.g. BLOCKPOOL_BENCH_NO_LATENCY=1:build/bench/blockpool_bench
to compare the same build with latency recording off.

Runs each binary once per round, round after round (alternating, so slow and
fast phases of a VM fall on every build alike), one run at a time with
subprocess.run, as bench/driver.py does, and prints per binary the medians of
rate, p50/p99 latency, CPU time and peak threads, and every run's rate or
p99. Do not wrap runs in a shell loop that pipes each into a new interpreter:
that interpreter starts beside the benchmark and changes where the scheduler
puts its threads (bench/README.md, "A/B runs").
"""
import json
import os
import shlex
import statistics
import subprocess
import sys


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    scenario, runs, binaries = shlex.split(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    results = {b: [] for b in binaries}
    for _ in range(runs):
        for b in binaries:
            env, path = os.environ.copy(), b
            if "=" in b.split(":", 1)[0] and ":" in b:
                spec, path = b.split(":", 1)
                env.update(kv.split("=", 1) for kv in spec.split(","))
            p = subprocess.run([path, *scenario], capture_output=True, text=True, timeout=300, env=env)
            try:
                d = json.loads(p.stdout)
            except json.JSONDecodeError:
                print(f"{b}: no JSON (rc={p.returncode}): {p.stderr.strip()[:200]}", file=sys.stderr)
                return 1
            if not d.get("ok", False):
                print(f"{b}: run not ok: {p.stdout.strip()[:200]}", file=sys.stderr)
                return 1
            results[b].append(d)
    for b, ds in results.items():
        def med(key):
            return statistics.median(d.get(key, 0) for d in ds)
        # The scenario's headline figure: rate, p99 latency, or wall time
        # (burst and idle report neither rate nor latencies).
        key = next(k for k in ("rate", "p99_us", "wall_s") if k in ds[0])
        scale = {"rate": 1e-6, "p99_us": 1.0, "wall_s": 1e3}[key]
        each = " ".join(f"{d[key] * scale:.2f}" if key == "rate" else f"{d[key] * scale:.0f}" for d in ds)
        print(f"{b}: rate {med('rate') / 1e6:.2f} M/s, p50 {med('p50_us'):.1f} us, "
              f"p99 {med('p99_us'):.1f} us, wall {med('wall_s') * 1e3:.1f} ms, "
              f"cpu {med('cpu_s') * 1e3:.0f} ms, threads {med('peak_threads'):.0f}; "
              f"{key} per run: {each}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
