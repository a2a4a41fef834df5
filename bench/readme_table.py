#!/usr/bin/env python3
"""Prints the README's tables from a run's results.

    python3 bench/readme_table.py [bench/results/latest.tsv]
    python3 bench/readme_table.py --matrix [bench/results/matrix.json]

The first: one row per peer, one column per scenario's headline metric
(medians), the best of each column in bold, from a full `bench/run.sh`.
The second: the workload matrix's summary, one row per cell variant, with
blockpool's figure and its ratio to the target's reference on both CPUs and
pinned to one, from `bench/run.sh --matrix`. Paste either into README.md's
"Performance" section after a run on a quiet machine.
"""
import csv
import json
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


def matrix_table(path):
    """The matrix summary: per variant, blockpool and its ratio to the target's reference."""
    with open(path) as f:
        cells = json.load(f)["cells"]
    # family -> (the ratio's reference, the cell's ratio field, the field naming
    # the reference peer (none for Tokio), target, whether the ratio must be at most it)
    refs = {
        "paced": ("Tokio", "vs_tokio", None, 0.3, True),
        "contended": ("best fixed pool", "vs_best_fixed", "best_fixed_peer", 1.0, False),
        "roundtrip": ("best peer", "vs_best", "best_peer", 1.0, True),
    }
    fmt = {"us": us, "tasks/s": lambda v: rate(v) + "/s"}
    rows = {}
    for c in cells:
        rows.setdefault((c["family"], c["variant"]), {})[c["cpu"]] = c
    print("| cell | blockpool, both CPUs | ratio | blockpool, pinned to one | ratio | target |")
    print("| --- | ---: | ---: | ---: | ---: | --- |")
    met = total = 0
    for (family, variant), by_cpu in rows.items():
        ref, field, peer_field, target, at_most = refs[family]
        out = []
        for cpu in ("both", "pinned"):
            c = by_cpu.get(cpu)
            r = c.get(field) if c else None
            if c is None or r is None:
                out += ["–", "–"]
                continue
            ok = r <= target if at_most else r >= target
            # The paced target also asks for fewer threads and less CPU than Tokio.
            if family == "paced":
                ok = ok and c["threads"] < c["tokio_threads"] and c["cpu_s"] < c["tokio_cpu_s"]
            met, total = met + ok, total + 1
            vs = c.get(peer_field, "") if peer_field else ""
            # A miss that rounds to the target shows one more digit.
            text = f"{r:.2f}" if ok or f"{r:.2f}" != f"{target:.2f}" else f"{r:.3f}"
            out += [fmt[c["unit"]](c["blockpool"]), f"{'' if ok else '**'}{text}x{'' if ok else '**'}"
                    + (f" {vs}" if vs else "")]
        label = f"{family}: {variant}"
        print(f"| {label} | " + " | ".join(out) + f" | {'≤' if at_most else '≥'} {target:g}x {ref} |")
    print(f"\nTargets met in {met} of {total} cells; misses in bold.")
    return 0


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--matrix":
        return matrix_table(sys.argv[2] if len(sys.argv) > 2 else "bench/results/matrix.json")
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
