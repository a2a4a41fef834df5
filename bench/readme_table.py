#!/usr/bin/env python3
"""Prints the README's every-peer table from a full run's TSV.

    python3 bench/readme_table.py [bench/results/latest.tsv]

One row per peer, one column per scenario's headline metric (medians), the
best of each column in bold. Paste the output into README.md's
"Performance" section after a full `bench/run.sh` on a quiet machine.
"""
import csv
import sys

PEERS = [
    ("blockpool", "blockpool"),
    ("tokio", "Tokio `spawn_blocking`"),
    ("libuv", "libuv threadpool"),
    ("asio_pool", "Asio `thread_pool`"),
    ("std_async", "`std::async`"),
    ("glib", "GLib `GThreadPool`"),
    ("glib4", "GLib, 4 threads"),
    ("qt", "Qt `QThreadPool`"),
    ("qt128", "Qt, 128 threads"),
    ("tbb", "oneTBB"),
]

# (header, scenario, metric, higher_is_better, formatter, extra (scenario, metric, formatter) or None)
def rate(v):
    return f"{v / 1e6:.2f} M" if v >= 1e6 else f"{v / 1e3:.0f} k"


def us(v):
    return f"{v:.1f} µs" if v < 100 else f"{v:.0f} µs" if v < 10000 else f"{v / 1e3:.1f} ms" if v < 1e6 else f"{v / 1e6:.1f} s"


def secs(v):
    return us(v * 1e6)


def count(v):
    return f"{v:.0f}"


COLUMNS = [
    ("flood tasks/s ↑", "flood", "rate", True, rate),
    ("contended tasks/s ↑", "contended", "rate", True, rate),
    ("round trip p50 ↓", "roundtrip", "p50_us", False, us),
    ("burst wall ↓", "burst", "wall_s", False, secs),
    ("paced tiny p99 ↓", "paced", "p99_us", False, us),
    ("paced threads ↓", "paced", "peak_threads", False, count),
    ("threads left idle ↓", "idle", "threads_left", False, count),
]


def main() -> int:
    path = sys.argv[1] if len(sys.argv) > 1 else "bench/results/latest.tsv"
    med = {}
    with open(path, newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            try:
                med[(row["scenario"], row["metric"], row["peer"])] = float(row["median"])
            except (ValueError, KeyError):
                pass
    peers = [(p, name) for p, name in PEERS if any(k[2] == p for k in med)]
    print("| peer | " + " | ".join(c[0] for c in COLUMNS) + " |")
    print("| --- |" + " ---: |" * len(COLUMNS))
    best = {}
    for _, scen, metric, higher, _ in COLUMNS:
        vals = [med[(scen, metric, p)] for p, _ in peers if (scen, metric, p) in med]
        best[(scen, metric)] = (max(vals) if higher else min(vals)) if vals else None
    for p, name in peers:
        cells = []
        for _, scen, metric, _, fmt in COLUMNS:
            v = med.get((scen, metric, p))
            if v is None:
                cells.append("fails")
                continue
            text = fmt(v)
            cells.append(f"**{text}**" if v == best[(scen, metric)] else text)
        print(f"| {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
