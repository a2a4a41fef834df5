#!/usr/bin/env python3
"""The workload matrix (issue 20): every peer on variants of three scenarios,
on both CPUs and pinned to one, and per cell blockpool against the best peer
and against Tokio.

Usually called by bench/run.sh --matrix:
    matrix.py --bin DIR --tokio PATH [--runs N] [--quick] [--peers a,b] [--cells REGEX]

Cells (each one scenario variant, run on both CPUs and under taskset -c 0):
  * paced: long tasks spawned before, after, or at random among each tick's
    ten tiny ones, long tasks of 5, 50 or 500 ms, two of them every 1, 10 or
    100 ticks (about ten in flight whatever their length); the loop waits in
    epoll (--loop epoll);
  * contended: 1, 2, 4 or 8 spawner threads sharing 200,000 empty tasks;
  * roundtrip: sequential spawn-and-await from a loop that waits in epoll or
    on its condition variable.
Runs alternate peers and cells run by run (round 1 of every cell and peer,
then round 2, ...), one at a time, each with subprocess.run from this one
process. A peer that cannot keep up with a cell runs it --slow-runs times
only (default once): its first run took longer than --slow-s seconds, or, on
the paced mix, it finished over 1.25x the mix's own length (ticks plus one
long task) because its long tasks queued behind each other (the fixed pools).

Writes bench/results/matrix.{md,tsv,json}, matrix-raw.jsonl and matrix.png
(quick-matrix.* with --quick).
"""
import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # no __pycache__ in bench/ for the import below
from driver import FIXED, HISTOGRAM_STYLE, PEERS, fmt_ratio, human, run_gnuplot  # noqa: E402

# (long task ms, every how many ticks two of them are spawned): about ten long
# tasks in flight in each (2 x 5 ms per 1 ms tick, 2 x 50 ms per 10, 2 x 500 ms
# per 100), so a pool needs about ten threads for them whatever their length.
PACED_LONGS = [(5, 1), (50, 10), (500, 100)]
PACED_ORDERS = ["before", "after", "random"]
SPAWNERS = [1, 2, 4, 8]
LOOPS = ["epoll", "cv"]
CPUS = ["both", "pinned"]

# family -> (headline field, unit, "lower"/"higher" is better)
HEADLINE = {
    "paced": ("p99_us", "us", "lower"),
    "contended": ("rate", "tasks/s", "higher"),
    "roundtrip": ("p50_us", "us", "lower"),
}
PACED_P99_VS_TOKIO = 0.3  # issue 20's target: tiny-task p99 at most 0.3x Tokio's


class Cell:
    def __init__(self, family, variant, args, cpu, check, nominal_s=None):
        self.family = family
        self.nominal_s = nominal_s  # paced: how long the mix lasts for a pool that keeps up
        self.variant = variant  # e.g. "long 5 ms, before"
        self.args = args  # scenario and options for the peer
        self.cpu = cpu  # "both" or "pinned"
        self.check = check  # JSON fields the run must echo
        self.id = ""  # family/variant/cpus, set by make_cells

    def label(self):
        return f"{self.family}: {self.variant}"


def make_cells(ticks, pin_cpu):
    cells = []
    for cpu in CPUS:
        for long_ms, every in PACED_LONGS:
            for order in PACED_ORDERS:
                args = ["paced", "--order", order, "--long-ms", str(long_ms), "--long-every", str(every),
                        "--ticks", str(ticks), "--loop", "epoll"]
                cells.append(Cell("paced", f"long {long_ms} ms every {every} ticks, {order}", args, cpu,
                                  {"order": order, "long_ms": long_ms, "long_every": every, "ticks": ticks,
                                   "loop": "epoll"}, nominal_s=(ticks + long_ms) / 1000))
                cells[-1].id = f"paced/{long_ms}ms-{order}"
        for n in SPAWNERS:
            cells.append(Cell("contended", f"{n} spawner{'s' if n > 1 else ''}",
                              ["contended", "--spawners", str(n)], cpu, {"spawners": n}))
            cells[-1].id = f"contended/{n}-spawners"
        for loop in LOOPS:
            cells.append(Cell("roundtrip", f"loop waits in {loop}", ["roundtrip", "--loop", loop], cpu,
                              {"loop": loop}))
            cells[-1].id = f"roundtrip/{loop}"
    for c in cells:
        c.prefix = ["taskset", "-c", pin_cpu] if c.cpu == "pinned" else []
        c.id += "/both" if c.cpu == "both" else f"/pin{pin_cpu}"
    return cells


def p_json_wall(out):
    """wall_s of a peer's JSON line, 0 if none."""
    try:
        return float(json.loads(out.splitlines()[-1]).get("wall_s", 0))
    except (ValueError, IndexError, AttributeError):
        return 0.0


def loadavg():
    with open("/proc/loadavg") as f:
        return f.read().split()[:3]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--bin", help="directory with the C++ peer executables")
    ap.add_argument("--tokio", help="the tokio_bench executable")
    ap.add_argument("--from-raw", metavar="JSONL",
                    help="run nothing: summarize the runs of an earlier matrix-raw.jsonl again")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "results"))
    ap.add_argument("--quick", action="store_true", help="one run, reduced sizes (smoke check)")
    ap.add_argument("--runs", type=int, default=3, help="runs per peer x cell (default 3)")
    ap.add_argument("--slow-s", type=float, default=2.5,
                    help="a peer x cell whose first run took longer runs --slow-runs times only")
    ap.add_argument("--slow-runs", type=int, default=1)
    ap.add_argument("--paced-ticks", type=int, default=1000,
                    help="ticks (ms) of each paced cell (default 1000; bench/run.sh's paced: 2000)")
    ap.add_argument("--pin-cpu", default="0", help="the CPU of the pinned cells (taskset -c)")
    ap.add_argument("--peers", default=",".join(PEERS))
    ap.add_argument("--cells", default="", help="only the cells whose id matches this regex")
    args = ap.parse_args()
    if not args.from_raw and not (args.bin and args.tokio):
        ap.error("--bin and --tokio are required (unless --from-raw)")

    peers = args.peers.split(",")
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        ap.error(f"unknown peer(s) {', '.join(unknown)}; known: {', '.join(PEERS)}")
    if "blockpool" not in peers:
        ap.error("the matrix compares blockpool with the others: include it in --peers")
    exe = {
        "blockpool": "blockpool_bench", "libuv": "uv_bench", "asio_pool": "asio_pool_bench",
        "std_async": "std_async_bench", "glib": "glib_bench", "glib4": "glib4_bench", "qt": "qt_bench",
        "qt128": "qt128_bench", "tbb": "tbb_bench",
    }
    cmd = {p: [os.path.join(args.bin or "", exe[p])] if p != "tokio" else [args.tokio] for p in peers}
    runs = 1 if args.quick else args.runs
    ticks = 200 if args.quick and args.paced_ticks == 1000 else args.paced_ticks
    cells = make_cells(ticks, args.pin_cpu)
    if args.cells:
        cells = [c for c in cells if re.search(args.cells, c.id)]
        if not cells:
            ap.error(f"no cell id matches {args.cells!r}")
    if not args.from_raw and not shutil.which("taskset") and any(c.cpu == "pinned" for c in cells):
        ap.error("taskset not found (Debian: util-linux)")

    os.makedirs(args.out, exist_ok=True)
    stem = "quick-matrix" if args.quick else "matrix"
    raw_path = os.path.join(args.out, f"{stem}-raw.jsonl")
    if args.from_raw:
        return summarize_raw(args, cells, peers, stem)
    results = {}  # (peer, cell id) -> [json]
    failures = []
    harness_errors = 0
    first_dur = {}
    slow = {}  # (peer, cell id) -> why it runs --slow-runs times only
    loads = []
    t_start = time.time()
    load_start = loadavg()
    print(f"matrix: {len(cells)} cells x {len(peers)} peers, {runs} run(s) each; "
          f"load average at start {' '.join(load_start)}", file=sys.stderr, flush=True)
    with open(raw_path, "w") as raw:
        for r in range(runs):
            t_round = time.time()
            for cell in cells:
                for peer in peers:
                    key = (peer, cell.id)
                    if r > 0 and r >= args.slow_runs and key in slow:
                        continue
                    argv = cell.prefix + cmd[peer] + cell.args + (["--quick"] if args.quick else [])
                    t0 = time.time()
                    try:
                        p = subprocess.run(argv, capture_output=True, text=True, timeout=300)
                        out, rc, err = p.stdout.strip(), p.returncode, p.stderr.strip()
                    except subprocess.TimeoutExpired:
                        out, rc, err = "", -1, "timeout"
                    except OSError as e:
                        out, rc, err = "", -1, f"cannot run {argv[0]}: {e}"
                    dur = time.time() - t0
                    if key not in first_dur:
                        first_dur[key] = dur
                        why = slow_reason(cell, dur, p_json_wall(out), args.slow_s)
                        if why:
                            slow[key] = why
                    line = out.splitlines()[-1] if out else ""
                    try:
                        d = json.loads(line)
                    except json.JSONDecodeError:
                        d = None
                    # A peer that reports its own failure ("error") prints no variant fields.
                    wrong = [k for k, v in cell.check.items()
                             if d is not None and "error" not in d and d.get(k) != v]
                    if rc != 0 or d is None or not d.get("ok") or wrong:
                        if d is None or "error" not in d or wrong:
                            harness_errors += 1
                        why = f" (variant fields {wrong} not as asked)" if wrong else ""
                        failures.append(f"{peer} {cell.id} run {r + 1}: rc={rc} out={line[:300]!r} "
                                        f"err={err[-300:]!r}{why}")
                        print(f"  FAIL {failures[-1]}", file=sys.stderr, flush=True)
                        if d is None:
                            continue
                    load1 = float(loadavg()[0])
                    loads.append(load1)
                    d.update({"cell": cell.id, "args": cell.args, "cpu": cell.cpu, "run": r + 1,
                              "load1": load1, "dur_s": round(dur, 3)})
                    raw.write(json.dumps(d) + "\n")
                    raw.flush()
                    if d.get("ok") and not wrong:
                        results.setdefault(key, []).append(d)
                    print(f"  run {r + 1}/{runs} {cell.id:40s} {peer:10s} {dur:6.2f}s", file=sys.stderr,
                          flush=True)
            left = sum(v for k, v in first_dur.items() if k not in slow) * (runs - r - 1)
            print(f"== round {r + 1}/{runs}: {time.time() - t_round:.0f} s, load {' '.join(loadavg())}"
                  + (f"; about {left:.0f} s to go" if left else ""), file=sys.stderr, flush=True)
    elapsed = time.time() - t_start
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"), "nproc": os.cpu_count(), "runs": runs,
        "peers": peers, "paced_ticks": ticks, "pin_cpu": args.pin_cpu, "quick": args.quick,
        "load_start": load_start, "load_end": loadavg(),
        "load1_during": [min(loads), statistics.median(loads), max(loads)] if loads else None,
        "elapsed_s": round(elapsed, 1),
        "slow": {f"{p} {c}": why for (p, c), why in slow.items()},
    }
    report(args, cells, peers, stem, results, failures, meta)
    return 1 if harness_errors else 0


def slow_reason(cell, dur, wall, slow_s):
    """Why a peer whose first run of `cell` took `dur` s (`wall` s measured by
    the peer) runs it fewer times, or None."""
    if dur > slow_s:
        return f"first run: {dur:.1f} s"
    if cell.nominal_s and wall > 1.25 * cell.nominal_s:
        return f"fell behind: {wall:.1f} s for a {cell.nominal_s:.1f} s mix"
    return None


def summarize_raw(args, cells, peers, stem):
    """--from-raw: the report of an earlier run, its runs matched to the cells
    by the variant fields they echo (not by cell id)."""
    results, failures, slow, loads, runs, elapsed = {}, [], {}, [], 0, 0.0
    with open(args.from_raw) as f:
        for line in f:
            d = json.loads(line)
            cell = next((c for c in cells if c.cpu == d.get("cpu") and (
                d.get("args") == c.args if "args" in d else
                d.get("cell") == c.id or (c.args[0] == d.get("scenario") and
                                          all(d.get(k) == v for k, v in c.check.items())))), None)
            if cell is None or d.get("peer") not in peers:
                continue
            key = (d["peer"], cell.id)
            d["cell"] = cell.id
            runs = max(runs, d.get("run", 1))
            elapsed += d.get("dur_s", 0)
            if "load1" in d:
                loads.append(d["load1"])
            if d.get("run") == 1:
                why = slow_reason(cell, d.get("dur_s", 0), d.get("wall_s", 0), args.slow_s)
                if why:
                    slow[key] = why
            if d.get("ok"):
                results.setdefault(key, []).append(d)
            else:
                failures.append(f"{d['peer']} {cell.id} run {d.get('run')}: "
                                f"{d.get('error') or json.dumps(d)[:300]}")
    old = {}
    old_json = os.path.join(args.out, f"{stem}.json")
    if os.path.exists(old_json):
        with open(old_json) as f:
            old = json.load(f).get("meta", {})
    meta = {
        "date": old.get("date", time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(os.path.getmtime(args.from_raw)))),
        "nproc": old.get("nproc", os.cpu_count()), "runs": runs, "peers": peers,
        "paced_ticks": next((c.check["ticks"] for c in cells if c.family == "paced"), None),
        "pin_cpu": args.pin_cpu, "quick": args.quick,
        "load_start": old.get("load_start", ["?"] * 3), "load_end": old.get("load_end", ["?"] * 3),
        "load1_during": [min(loads), statistics.median(loads), max(loads)] if loads else None,
        "elapsed_s": old.get("elapsed_s", round(elapsed, 1)),
        "slow": {f"{p} {c}": why for (p, c), why in slow.items()},
        "from_raw": args.from_raw,
    }
    if os.path.abspath(args.from_raw) != os.path.abspath(os.path.join(args.out, f"{stem}-raw.jsonl")):
        shutil.copyfile(args.from_raw, os.path.join(args.out, f"{stem}-raw.jsonl"))
    report(args, cells, peers, stem, results, failures, meta)
    return 0


def report(args, cells, peers, stem, results, failures, meta):
    """Writes <stem>.{md,tsv,json} and the chart; prints the table."""
    raw_path = os.path.join(args.out, f"{stem}-raw.jsonl")
    elapsed = meta["elapsed_s"]

    def med(peer, cell, field):
        vals = [d[field] for d in results.get((peer, cell.id), []) if d.get(field) is not None]
        return statistics.median(vals) if vals else None

    summary = [summarize(c, peers, med) for c in cells]

    write_tsv(os.path.join(args.out, f"{stem}.tsv"), cells, peers, results)
    with open(os.path.join(args.out, f"{stem}.json"), "w") as f:
        json.dump({"meta": meta, "cells": summary, "failures": failures}, f, indent=1)
    md = markdown(cells, summary, peers, med, meta, failures, results)
    md_path = os.path.join(args.out, f"{stem}.md")
    with open(md_path, "w") as f:
        f.write(md)
    print()
    print(md)
    print(f"wrote {md_path}, {stem}.tsv, {stem}.json, {raw_path} ({elapsed:.0f} s of runs)")
    chart = os.path.join(args.out, f"{stem}.png")
    if shutil.which("gnuplot"):
        if draw_chart(args.out, chart, summary, args.quick):
            print(f"wrote {chart}")
    else:
        print("gnuplot not found: no chart", file=sys.stderr)


def best_of(cell, peers, med, field, better):
    vals = [(med(p, cell, field), p) for p in peers if med(p, cell, field) is not None]
    if not vals:
        return None, None
    return (min if better == "lower" else max)(vals)


def summarize(cell, peers, med):
    field, unit, better = HEADLINE[cell.family]
    others = [p for p in peers if p != "blockpool"]
    b = med("blockpool", cell, field)
    best, best_peer = best_of(cell, others, med, field, better)
    fixed, fixed_peer = best_of(cell, [p for p in FIXED if p in peers], med, field, better)
    t = med("tokio", cell, field) if "tokio" in peers else None
    s = {
        "id": cell.id, "family": cell.family, "variant": cell.variant, "cpu": cell.cpu, "args": cell.args,
        "metric": field, "unit": unit, "better": better, "blockpool": b,
        "best_peer": best_peer, "best": best, "vs_best": b / best if b is not None and best else None,
        "tokio": t, "vs_tokio": b / t if b is not None and t else None,
        "best_fixed_peer": fixed_peer, "best_fixed": fixed,
        "medians": {p: {k: med(p, cell, k) for k in ("p50_us", "p99_us", "rate", "cpu_s", "peak_threads")
                        if med(p, cell, k) is not None} for p in peers},
    }
    missed = []
    if cell.family == "paced":
        bth, tth = med("blockpool", cell, "peak_threads"), med("tokio", cell, "peak_threads")
        bc, tc = med("blockpool", cell, "cpu_s"), med("tokio", cell, "cpu_s")
        s.update({"threads": bth, "tokio_threads": tth, "cpu_s": bc, "tokio_cpu_s": tc})
        if b is None or t is None:
            s["verdict"] = "n/a"
        else:
            if b > PACED_P99_VS_TOKIO * t:
                missed.append(f"p99 {b / t:.2f}x Tokio")
            if bth is not None and tth is not None and not bth < tth:
                missed.append(f"threads {bth:g} vs {tth:g}")
            if bc is not None and tc is not None and bc > tc:
                missed.append(f"CPU {bc / tc:.2f}x")
        s["target"] = f"p99 ≤ {PACED_P99_VS_TOKIO}x Tokio, fewer threads, less CPU"
    elif cell.family == "contended":
        if b is None or fixed is None:
            s["verdict"] = "n/a"
        elif b < fixed:
            missed.append(f"{b / fixed:.2f}x {fixed_peer}")
        s["vs_best_fixed"] = b / fixed if b is not None and fixed else None
        s["target"] = "≥ 1.0x best fixed pool"
    else:
        if b is None or best is None:
            s["verdict"] = "n/a"
        elif b > best:
            missed.append(f"{b / best:.2f}x {best_peer}")
        s["target"] = "p50 ≤ best peer"
    s.setdefault("verdict", "MISSED: " + "; ".join(missed) if missed else "met")
    return s


def write_tsv(path, cells, peers, results):
    fields = ["p50_us", "p99_us", "max_us", "rate", "cpu_s", "peak_threads", "csw", "wall_s"]
    with open(path, "w") as f:
        f.write("cell\tfamily\tcpu\tvariant\tmetric\tpeer\tmedian\tmin\tmax\truns\n")
        for c in cells:
            for field in fields:
                for p in peers:
                    vals = [d[field] for d in results.get((p, c.id), []) if d.get(field) is not None]
                    if not vals:
                        continue
                    f.write(f"{c.id}\t{c.family}\t{c.cpu}\t{c.variant}\t{field}\t{p}\t"
                            f"{statistics.median(vals):.9g}\t{min(vals):.9g}\t{max(vals):.9g}\t{len(vals)}\n")


def markdown(cells, summary, peers, med, meta, failures, results):
    md = []
    md.append("# blockpool workload matrix\n")
    ls, le = " ".join(meta["load_start"]), " ".join(meta["load_end"])
    during = meta["load1_during"]
    md.append(f"{meta['date']}, {meta['nproc']} CPUs, medians of {meta['runs']} run(s) per peer x cell "
              f"(fewer where a peer could not keep up: runs per peer below each table, the reasons at "
              f"the end). Load average (1/5/15 min) at start {ls}, at end {le}"
              + (f"; 1-min load after each run: min {during[0]:.2f}, median {during[1]:.2f}, "
                 f"max {during[2]:.2f}" if during else "")
              + f"; {meta['elapsed_s']:.0f} s of runs. Paced cells: {meta['paced_ticks']} ticks of 1 ms. "
              f"Pinned: `taskset -c {meta['pin_cpu']}`.\n")
    md.append("Ratios are blockpool / other: below 1 is better for latency (p50, p99), above 1 for "
              "rates (tasks/s). *Best peer*: the best of every other peer run; *best fixed*: of "
              f"{', '.join(p for p in FIXED if p in peers)}.\n")
    md.append("## Summary\n")
    md.append("| cell | CPUs | metric | blockpool | best peer | vs best | Tokio | vs Tokio | target | verdict |")
    md.append("| --- | --- | --- | ---: | --- | ---: | ---: | ---: | --- | --- |")
    for s in summary:
        unit = s["unit"]
        arrow = "↓" if s["better"] == "lower" else "↑"
        best = f"{s['best_peer']} {human(s['best'], unit)}" if s["best_peer"] else "n/a"
        target = s["target"]
        if s["family"] == "contended" and s.get("best_fixed_peer"):
            target += f" ({s['best_fixed_peer']} {human(s['best_fixed'], unit)}: {fmt_ratio(s['vs_best_fixed'])})"
        if s["family"] == "paced":
            target += (f" (threads {human(s['threads'], '')} vs {human(s['tokio_threads'], '')}, "
                       f"CPU {human(s['cpu_s'], 's')} vs {human(s['tokio_cpu_s'], 's')})")
        verdict = s["verdict"] if s["verdict"] in ("met", "n/a") else f"**{s['verdict']}**"
        md.append(f"| {s['family']}: {s['variant']} | {s['cpu']} | {s['metric'].replace('_us', '')} {arrow} | "
                  f"**{human(s['blockpool'], unit)}** | {best} | {fmt_ratio(s['vs_best'])} | "
                  f"{human(s['tokio'], unit)} | {fmt_ratio(s['vs_tokio'])} | {target} | {verdict} |")
    missed = [s for s in summary if s["verdict"].startswith("MISSED")]
    md.append("")
    md.append(f"Targets met in {sum(s['verdict'] == 'met' for s in summary)} of {len(summary)} cells"
              + (f"; missed in: {', '.join(s['family'] + ': ' + s['variant'] + ' (' + s['cpu'] + ')' for s in missed)}."
                 if missed else "."))
    md.append("")
    md.append("![matrix chart](matrix.png)\n")

    # Every peer's medians, one table per family.
    for family, rows in (("paced", [("p99_us", "tiny p99", "us"), ("p50_us", "tiny p50", "us"),
                                    ("peak_threads", "peak threads", ""), ("cpu_s", "CPU", "s")]),
                         ("contended", [("rate", "tasks/s", "tasks/s"), ("peak_threads", "peak threads", ""),
                                        ("cpu_s", "CPU", "s")]),
                         ("roundtrip", [("p50_us", "p50", "us"), ("p99_us", "p99", "us"),
                                        ("cpu_s", "CPU", "s")])):
        fam_cells = [c for c in cells if c.family == family]
        if not fam_cells:
            continue
        md.append(f"## {family}: every peer (medians)\n")
        md.append("| cell | CPUs | metric | " + " | ".join(peers) + " |")
        md.append("| --- | --- | --- | " + " | ".join("---:" for _ in peers) + " |")
        for c in fam_cells:
            for field, label, unit in rows:
                vals = []
                for p in peers:
                    m = med(p, c, field)
                    v = "fails" if m is None else human(m, unit)
                    vals.append(f"**{v}**" if p == "blockpool" else v)
                md.append(f"| {c.variant} | {c.cpu} | {label} | " + " | ".join(vals) + " |")
        counts = ", ".join(f"{p} " + "/".join(str(len(results.get((p, c.id), []))) for c in fam_cells)
                           for p in peers)
        md.append("")
        md.append(f"Runs per cell (in the table's order): {counts}.\n")
    if meta.get("slow"):
        md.append("## Run fewer times (could not keep up)\n")
        md.append("Once each (`--slow-runs`): a peer whose first run of a cell took over `--slow-s` seconds, "
                  "or finished a paced mix over 1.25x later than the mix lasts (its long tasks queued).\n")
        by_peer = {}
        for k, why in meta["slow"].items():
            peer, cell = k.split(" ", 1)
            kind = "fell behind the paced mix" if why.startswith("fell behind") else "slow first run"
            by_peer.setdefault(peer, {}).setdefault(kind, []).append(f"{cell} ({why.split(': ')[-1]})")
        for peer, kinds in by_peer.items():
            md.append(f"- {peer}: " + "; ".join(f"{kind} in {len(items)} cell{'s' if len(items) > 1 else ''}: "
                                                 + ", ".join(items) for kind, items in kinds.items()))
        md.append("")
    if failures:
        md.append("## Failed runs (excluded from the medians)\n")
        md.extend(f"- {f}" for f in failures)
        md.append("")
    return "\n".join(md) + "\n"


def draw_chart(outdir, chart_path, summary, quick):
    datadir = os.path.join(outdir, ".chart")
    os.makedirs(datadir, exist_ok=True)
    panels = [
        ("paced", "Paced mix: tiny-task p99, blockpool / other (lower is better; target ≤ 0.3x Tokio)",
         PACED_P99_VS_TOKIO),
        ("contended", "Contended: tasks/s, blockpool / other (higher is better; target ≥ 1x best fixed pool)",
         1.0),
        ("roundtrip", "Round trip: p50, blockpool / other (lower is better; target ≤ 1x best peer)", 1.0),
    ]
    panels = [p for p in panels if any(s["family"] == p[0] for s in summary)]
    if not panels:
        return False
    script = [
        f"set terminal pngcairo noenhanced size 1500,{430 * len(panels)} font 'sans,10'",
        f"set output '{chart_path}'",
        f"set multiplot layout {len(panels)},1 title 'blockpool workload matrix — ratios of medians"
        + (" (QUICK: reduced sizes)" if quick else "") + "' font 'sans,13'",
        *HISTOGRAM_STYLE,
        "set key top left font 'sans,9'",
        "set xtics nomirror rotate by 30 right font 'sans,8'",
        "set format y '%g'",
        "set ytics (0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1, 2, 3, 5, 10, 20, 50, 100)",
        "set bmargin 7",
    ]
    for idx, (family, title, target) in enumerate(panels):
        rows = [s for s in summary if s["family"] == family]
        path = os.path.join(datadir, f"matrix{idx}.dat")
        vals = []
        with open(path, "w") as f:
            for s in rows:
                label = s["variant"].replace("long ", "").replace(" every ", "/").replace(" ticks", "t")
                label += " pin" if s["cpu"] == "pinned" else ""
                a, b = s["vs_best"], s["vs_tokio"]
                vals += [v for v in (a, b) if v]
                f.write(f'"{label}" {a if a else "?"} {b if b else "?"}\n')
        lo = min(vals + [target]) / 2 if vals else 0.01
        hi = max(vals + [target]) * 3 if vals else 10
        script += [
            f"set title '{title}'",
            "set ylabel 'ratio'",
            f"set yrange [{lo:.4g}:{hi:.4g}]",
            f"plot '{path}' using 2:xtic(1) title 'vs best peer' lc rgb '#d62728', "
            f"'' using 3 title 'vs Tokio' lc rgb '#1f77b4', "
            f"{target} with lines dt 2 lw 2 lc rgb '#000000' title 'target {target}x'",
        ]
    script.append("unset multiplot")
    return run_gnuplot(os.path.join(datadir, "matrix.gp"), script)


if __name__ == "__main__":
    sys.exit(main())
