#!/usr/bin/env python3
"""Runs every peer x scenario several times, takes medians, and writes
bench/results/latest.{tsv,md}, bench/results/chart.png (gnuplot).

Usually called by bench/run.sh:  driver.py --bin DIR --tokio PATH [--quick] [--runs N]
"""
import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time

PEERS = ["blockpool", "tokio", "libuv", "asio_pool", "std_async", "glib", "glib4", "qt", "qt128", "tbb"]
# Pools of a fixed size: the "best fixed pool" of the flood and contended
# targets is the best of these (among the peers run).
FIXED = ["libuv", "asio_pool", "glib4", "qt", "tbb"]
SCENARIOS = ["flood", "roundtrip", "burst", "contended", "paced", "idle"]

# (scenario, json field, label, unit, better) -- the table rows.
ROWS = [
    ("flood", "rate", "tasks/s", "tasks/s", "higher"),
    ("flood", "peak_threads", "peak threads", "", "lower"),
    ("flood", "cpu_s", "CPU", "s", "lower"),
    ("roundtrip", "p50_us", "p50", "us", "lower"),
    ("roundtrip", "p99_us", "p99", "us", "lower"),
    ("roundtrip", "cpu_s", "CPU", "s", "lower"),
    ("burst", "wall_s", "wall", "s", "lower"),
    ("burst", "peak_threads", "peak threads", "", "lower"),
    ("burst", "cpu_s", "CPU", "s", "lower"),
    ("contended", "rate", "tasks/s", "tasks/s", "higher"),
    ("contended", "peak_threads", "peak threads", "", "lower"),
    ("contended", "cpu_s", "CPU", "s", "lower"),
    ("paced", "p50_us", "tiny p50", "us", "lower"),
    ("paced", "p99_us", "tiny p99", "us", "lower"),
    ("paced", "peak_threads", "peak threads", "", "lower"),
    ("paced", "cpu_s", "CPU", "s", "lower"),
    ("idle", "cpu_s", "CPU in idle window", "s", "lower"),
    ("idle", "csw", "context switches in idle window", "", "lower"),
    ("idle", "threads_after_burst", "threads after burst", "", "lower"),
    ("idle", "threads_left", "threads left at check", "", "lower"),
    ("idle", "burst_cpu_s", "CPU of the burst before", "s", "lower"),
]


def human(v, unit):
    if v is None:
        return "n/a"
    if unit == "tasks/s":
        if v >= 1e6:
            return f"{v / 1e6:.2f} M/s"
        return f"{v / 1e3:.1f} k/s"
    if unit == "us":
        if v >= 10000:
            return f"{v / 1000:.0f} ms"
        if v >= 1000:
            return f"{v / 1000:.2f} ms"
        return f"{v:.1f} us"
    if unit == "s":
        if v >= 1:
            return f"{v:.2f} s"
        if v >= 0.001:
            return f"{v * 1000:.1f} ms"
        return f"{v * 1000:.2f} ms"
    if abs(v - round(v)) < 1e-9:
        return f"{int(round(v))}"
    return f"{v:.1f}"


def ratio(v, base):
    if v is None or base is None:
        return None
    if base == 0:
        return None if v != 0 else 1.0
    return v / base


def fmt_ratio(r):
    if r is None:
        return "–"
    if r >= 100:
        return f"{r:.0f}x"
    if r >= 10:
        return f"{r:.1f}x"
    return f"{r:.2f}x"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True, help="directory with the C++ peer executables")
    ap.add_argument("--tokio", required=True, help="the tokio_bench executable")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--slow-runs", type=int, default=3,
                    help="runs for a peer x scenario whose first run took more than --slow-s")
    ap.add_argument("--slow-s", type=float, default=5.0)
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    args = ap.parse_args()

    peers = args.peers.split(",")
    scenarios = args.scenarios.split(",")
    runs = 1 if args.quick else args.runs
    cmd = {
        "blockpool": [os.path.join(args.bin, "blockpool_bench")],
        "tokio": [args.tokio],
        "libuv": [os.path.join(args.bin, "uv_bench")],
        "asio_pool": [os.path.join(args.bin, "asio_pool_bench")],
        "std_async": [os.path.join(args.bin, "std_async_bench")],
        "glib": [os.path.join(args.bin, "glib_bench")],
        "glib4": [os.path.join(args.bin, "glib4_bench")],
        "qt": [os.path.join(args.bin, "qt_bench")],
        "qt128": [os.path.join(args.bin, "qt128_bench")],
        "tbb": [os.path.join(args.bin, "tbb_bench")],
    }
    unknown = [p for p in peers if p not in cmd]
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    unknown = [s for s in scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {', '.join(unknown)}; known: {', '.join(SCENARIOS)}")
    os.makedirs(args.out, exist_ok=True)
    raw_path = os.path.join(args.out, "raw.jsonl" if not args.quick else "quick-raw.jsonl")
    results = {}  # (peer, scenario) -> list of dicts
    failures = []
    failed_keys = set()
    harness_errors = 0  # failures a peer did not explain with an "error" field
    first_dur = {}
    t_start = time.time()
    load_start = open("/proc/loadavg").read().split()[:3]
    with open(raw_path, "w") as raw:
        for r in range(runs):
            for sc in scenarios:
                for peer in peers:
                    key = (peer, sc)
                    if r > 0 and first_dur.get(key, 0) > args.slow_s and r >= args.slow_runs:
                        continue
                    argv = cmd[peer] + [sc] + (["--quick"] if args.quick else [])
                    t0 = time.time()
                    try:
                        p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
                        out, rc, err = p.stdout.strip(), p.returncode, p.stderr.strip()
                    except subprocess.TimeoutExpired:
                        out, rc, err = "", -1, "timeout"
                    except OSError as e:  # not built (e.g. its library is missing)
                        out, rc, err = "", -1, f"cannot run {argv[0]}: {e}"
                    dur = time.time() - t0
                    first_dur.setdefault(key, dur)
                    line = out.splitlines()[-1] if out else ""
                    try:
                        d = json.loads(line)
                    except json.JSONDecodeError:
                        d = None
                    if rc != 0 or d is None or not d.get("ok"):
                        failed_keys.add(key)
                        if d is None or "error" not in d:
                            harness_errors += 1  # crash, timeout, wrong count/checksum/thread
                        failures.append(f"{peer} {sc} run {r + 1}: rc={rc} out={line!r} err={err[-300:]!r}")
                        print(f"  FAIL {peer:10s} {sc:10s} {failures[-1]}", file=sys.stderr)
                        if d is None:
                            continue
                    d["run"] = r + 1
                    d["load1"] = float(open("/proc/loadavg").read().split()[0])
                    raw.write(json.dumps(d) + "\n")
                    if d.get("ok"):
                        results.setdefault(key, []).append(d)
                    print(f"  run {r + 1}/{runs} {sc:10s} {peer:10s} {dur:6.2f}s", file=sys.stderr, flush=True)
    elapsed = time.time() - t_start
    load_end = open("/proc/loadavg").read().split()[:3]

    def med(peer, sc, field):
        vals = [d[field] for d in results.get((peer, sc), []) if field in d and d[field] is not None]
        return statistics.median(vals) if vals else None

    def count(peer, sc):
        return len(results.get((peer, sc), []))

    # ---- TSV (long format) ----
    tsv_path = os.path.join(args.out, "quick.tsv" if args.quick else "latest.tsv")
    with open(tsv_path, "w") as f:
        f.write("scenario\tmetric\tpeer\tmedian\tmin\tmax\truns\tratio_to_blockpool\n")
        for sc, field, _label, _unit, _b in ROWS:
            if sc not in scenarios:
                continue
            base = med("blockpool", sc, field)
            for peer in peers:
                vals = [d[field] for d in results.get((peer, sc), []) if field in d]
                if not vals:
                    continue
                m = statistics.median(vals)
                rr = ratio(m, base)
                f.write(f"{sc}\t{field}\t{peer}\t{m:.9g}\t{min(vals):.9g}\t{max(vals):.9g}\t{len(vals)}\t"
                        f"{'' if rr is None else f'{rr:.4g}'}\n")

    # ---- Markdown table ----
    md = []
    md.append("Medians; in brackets each peer's ratio to blockpool (peer / blockpool). "
              "↑ higher is better, ↓ lower is better.\n")
    md.append("| scenario | metric | " + " | ".join(peers) + " |")
    md.append("| --- | --- | " + " | ".join("---:" for _ in peers) + " |")
    for sc, field, label, unit, better in ROWS:
        if sc not in scenarios:
            continue
        base = med("blockpool", sc, field)
        cells = []
        for peer in peers:
            m = med(peer, sc, field)
            if m is None and (peer, sc) in failed_keys:
                cells.append("fails")
            elif m is None:
                cells.append("n/a")
            elif peer == "blockpool":
                cells.append(f"**{human(m, unit)}**")
            else:
                cells.append(f"{human(m, unit)} ({fmt_ratio(ratio(m, base))})")
        arrow = "↑" if better == "higher" else "↓"
        md.append(f"| {sc} | {label} {arrow} | " + " | ".join(cells) + " |")
    md.append("")
    md.append("Runs per peer x scenario: " + ", ".join(
        f"{sc}: " + "/".join(str(count(p, sc)) for p in peers) for sc in scenarios) +
        f" (order: {', '.join(peers)}). Load average (1/5/15 min) at start {' '.join(load_start)}, "
        f"at end {' '.join(load_end)}; {elapsed:.0f} s of runs.")

    # ---- targets (blockpool) ----
    def best(sc, field, among, fn):
        vals = [(med(p, sc, field), p) for p in among if med(p, sc, field) is not None]
        return fn(vals) if vals else (None, None)

    targets = []
    others = [p for p in peers if p != "blockpool"]
    fixed = [p for p in FIXED if p in peers]

    def add(name, ok, detail):
        targets.append((name, "met" if ok else "**MISSED**", detail))

    try:
        for sc in ("flood", "contended"):
            if sc not in scenarios:
                continue
            b = med("blockpool", sc, "rate")
            bf, bfp = best(sc, "rate", fixed, max)
            t = med("tokio", sc, "rate")
            if b and bf:
                add(f"{sc}: ≥ best fixed pool", b >= bf,
                    f"blockpool {human(b, 'tasks/s')} vs {bfp} {human(bf, 'tasks/s')} ({b / bf:.2f}x)")
            if b and t:
                add(f"{sc}: ≥ 15x Tokio", b >= 15 * t,
                    f"blockpool {human(b, 'tasks/s')} = {b / t:.1f}x Tokio {human(t, 'tasks/s')}")
        if "burst" in scenarios:
            b = med("blockpool", "burst", "wall_s")
            bo, bop = best("burst", "wall_s", others, min)
            th = med("blockpool", "burst", "peak_threads")
            pw = med("blockpool", "burst", "pool_peak_threads")
            need = 256 if not args.quick else 64
            if b and bo:
                add("burst: wall ≤ 1.2x best peer", b <= 1.2 * bo,
                    f"blockpool {human(b, 's')} vs {bop} {human(bo, 's')} ({b / bo:.2f}x)")
            if th is not None:
                add("burst: no more threads than needed", th <= need,
                    f"peak {human(th, '')} threads in /proc beyond the harness "
                    f"(pool metrics: {human(pw, '')} workers) for {need} sleeping tasks")
        if "roundtrip" in scenarios:
            b = med("blockpool", "roundtrip", "p50_us")
            bo, bop = best("roundtrip", "p50_us", others, min)
            if b and bo:
                add("round trip: p50 ≤ best peer", b <= bo,
                    f"blockpool {human(b, 'us')} vs {bop} {human(bo, 'us')} ({b / bo:.2f}x)")
        if "paced" in scenarios and "tokio" in peers:
            b99, t99 = med("blockpool", "paced", "p99_us"), med("tokio", "paced", "p99_us")
            bth, tth = med("blockpool", "paced", "peak_threads"), med("tokio", "paced", "peak_threads")
            bc, tc = med("blockpool", "paced", "cpu_s"), med("tokio", "paced", "cpu_s")
            if b99 and t99:
                add("paced: p99 ≤ 1/4 Tokio's", b99 <= t99 / 4,
                    f"blockpool {human(b99, 'us')} vs Tokio {human(t99, 'us')} ({b99 / t99:.2f}x)")
            if bth is not None and tth is not None:
                add("paced: fewer threads than Tokio", bth < tth, f"{human(bth, '')} vs {human(tth, '')}")
            if bc is not None and tc is not None:
                add("paced: CPU ≤ Tokio's", bc <= tc, f"{human(bc, 's')} vs {human(tc, 's')} ({bc / tc:.2f}x)")
        if "idle" in scenarios:
            left = med("blockpool", "idle", "threads_left")
            csw = med("blockpool", "idle", "csw")
            after = med("blockpool", "idle", "threads_after_burst")
            if left is not None:
                add("idle: threads back to zero after keep-alive", left == 0,
                    f"{human(left, '')} threads at the check (keep-alive 1 s, checked at 1.5 s)")
            if csw is not None and after is not None:
                add("idle: no periodic wake-ups", csw <= after * 2 + 10,
                    f"{human(csw, '')} context switches in the idle window for {human(after, '')} "
                    f"threads that retire (≤ 2 per retiring thread + 10 allowed)")
    except Exception as e:  # never lose the table for a target computation bug
        targets.append(("(target evaluation failed)", "", repr(e)))

    if targets:
        md.append("")
        md.append("| blockpool target | verdict | measured (medians) |")
        md.append("| --- | --- | --- |")
        for name, verdict, detail in targets:
            md.append(f"| {name} | {verdict} | {detail} |")
    if failures:
        md.append("")
        md.append("Failed runs (excluded from the medians; \"fails\" in the table):")
        md.extend(f"- {f}" for f in failures)
    md_text = "\n".join(md) + "\n"
    md_path = os.path.join(args.out, "quick.md" if args.quick else "latest.md")
    with open(md_path, "w") as f:
        f.write(md_text)

    print()
    print(md_text)
    print(f"wrote {tsv_path}, {md_path}, {raw_path} ({elapsed:.0f} s of runs)")

    # ---- chart ----
    chart_path = os.path.join(args.out, "quick-chart.png" if args.quick else "chart.png")
    if shutil.which("gnuplot"):
        if draw_chart(args.out, chart_path, peers, med, args.quick, failed_keys):
            print(f"wrote {chart_path}")
        else:
            print("no scenario with data: no chart", file=sys.stderr)
    else:
        print("gnuplot not found: no chart", file=sys.stderr)
    # A peer that reports its own limit (std::async's EAGAIN in flood) is a
    # result, not an error; anything else makes the command fail.
    return 1 if harness_errors else 0


PANELS = [
    # title, ylabel, [(scenario, field, cluster label, scale)]
    ("Throughput, empty tasks (higher is better)", "tasks/s",
     [("flood", "rate", "flood 200k", 1), ("contended", "rate", "contended 4x50k", 1)]),
    ("Round trip from the loop (lower is better)", "microseconds",
     [("roundtrip", "p50_us", "p50", 1), ("roundtrip", "p99_us", "p99", 1)]),
    ("Burst of sleeping tasks: wall time (lower is better)", "milliseconds",
     [("burst", "wall_s", "burst (256 x 20 ms)", 1000)]),
    ("Paced mix: tiny-task latency (lower is better)", "microseconds",
     [("paced", "p50_us", "p50", 1), ("paced", "p99_us", "p99", 1)]),
    ("Peak worker threads (/proc)", "threads",
     [("flood", "peak_threads", "flood", 1), ("burst", "peak_threads", "burst", 1),
      ("contended", "peak_threads", "contended", 1), ("paced", "peak_threads", "paced", 1)]),
    ("Process CPU time per scenario (lower is better)", "milliseconds",
     [("flood", "cpu_s", "flood", 1000), ("contended", "cpu_s", "contended", 1000),
      ("paced", "cpu_s", "paced", 1000), ("idle", "cpu_s", "2 s idle", 1000)]),
]


def draw_chart(outdir, chart_path, peers, med, quick, failed_keys):
    datadir = os.path.join(outdir, ".chart")
    os.makedirs(datadir, exist_ok=True)
    colors = {"blockpool": "#d62728", "tokio": "#1f77b4", "libuv": "#2ca02c",
              "asio_pool": "#9467bd", "std_async": "#7f7f7f", "glib": "#ff7f0e",
              "glib4": "#ffbb78", "qt": "#17becf", "qt128": "#9edae5", "tbb": "#8c564b"}
    # A run of some scenarios only (--scenarios) draws only the panels that
    # have data: an empty panel has no valid y range and gnuplot rejects it.
    def has_data(series):
        return any((med(p, sc, field) or 0) > 0 for sc, field, _l, _s in series for p in peers)

    panels = [panel for panel in PANELS if has_data(panel[2])]
    if not panels:
        return False
    cols = min(3, len(panels))
    pw = 500 if len(peers) <= 5 else 760  # panel width: room for ten bars a cluster
    rows = (len(panels) + cols - 1) // cols
    script = [
        f"set terminal pngcairo noenhanced size {pw * cols},{500 * rows} font 'sans,10'",
        f"set output '{chart_path}'",
        f"set multiplot layout {rows},{cols} title 'blockpool vs peers — medians"
        + (" (QUICK: reduced sizes)" if quick else "") + "' font 'sans,13'",
        *HISTOGRAM_STYLE,
        "set format y '%.0s%c'",
        "set key top left font 'sans,8' samplen 1.5",
        "set xtics nomirror font 'sans,9'",
    ]
    for idx, (title, ylabel, series) in enumerate(panels):
        path = os.path.join(datadir, f"panel{idx}.dat")
        lo, hi = None, None
        with open(path, "w") as f:
            for sc, field, label, scale in series:
                vals = []
                for p in peers:
                    m = med(p, sc, field)
                    if m is None or m <= 0:
                        vals.append("?")
                    else:
                        v = m * scale
                        vals.append(f"{v:.6g}")
                        lo = v if lo is None else min(lo, v)
                        hi = v if hi is None else max(hi, v)
                f.write('"' + label + '" ' + " ".join(vals) + "\n")
        yr = ""
        if lo is not None:
            yr = f"set yrange [{lo / 3:.6g}:{hi * 8:.6g}]"
        missing = sorted({f"{p} fails {sc}" for sc, _f, _l, _s in series for p in peers
                          if (p, sc) in failed_keys and med(p, sc, _f) is None})
        script.append("unset label")
        if missing:
            script.append(f"set label 1 'no bar: {'; '.join(missing)}' at graph 0.98, graph 0.95 right "
                          "font 'sans,8'")
        script.append(f"set title '{title}'")
        script.append(f"set ylabel '{ylabel}'")
        big = ylabel == "tasks/s" or (hi is not None and hi >= 1e5)
        script.append("set format y '%.0s%c'" if big else "set format y '%g'")
        script.append(yr if yr else "set autoscale y")
        plots = []
        for i, p in enumerate(peers):
            plots.append(f"'{path}' using {i + 2}:xtic(1) title '{p}' lc rgb '{colors.get(p, '#000000')}'")
        script.append("plot " + ", \\\n     ".join(plots))
    script.append("unset multiplot")
    return run_gnuplot(os.path.join(datadir, "chart.gp"), script)


# What this chart and matrix.py's share: clustered bars on a log scale, '?'
# for a missing value.
HISTOGRAM_STYLE = [
    "set style data histogram",
    "set style histogram clustered gap 1",
    "set style fill solid 0.85 border -1",
    "set boxwidth 0.9",
    "set logscale y",
    "set grid ytics",
    "set datafile missing '?'",
]


def run_gnuplot(gp, script):
    """Writes `script` (a list of lines) to the file `gp` and runs gnuplot on it."""
    with open(gp, "w") as f:
        f.write("\n".join(script) + "\n")
    r = subprocess.run(["gnuplot", gp], capture_output=True, text=True)
    if r.returncode != 0:
        print("gnuplot failed:\n" + r.stderr, file=sys.stderr)
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
