#!/usr/bin/env bash
# scripts/kvload.sh: the kvserver load test (examples/kvserver, issue 19).
# Creates the data set, then for each run and each mode (blockpool, inline,
# fixed) starts a fresh server per phase and drives it:
#   noscans  kvbench, open loop: GET-RATE GET/s, no scans          (baseline)
#   scans    kvbench, open loop: GET-RATE GET/s + SCAN-RATE scans/s, evenly spaced
#   burst    the same scan rate, scans sent BURST at a time        (--burst 0: skipped)
#   wrk      wrk, closed loop, 32 connections, 1 scan per 100 requests (throughput)
# and prints per mode and phase the medians over the runs of: GET p50/p99/
# p99.9 (from each request's scheduled send), GET p99 from its actual send
# (without kvbench's own lateness), scan p50/p99, requests/s, errors, peak
# pool threads, and the CPU that other processes used meanwhile (the
# machine is shared). Draws
# RESULTS/chart.png (gnuplot) and writes RESULTS/latest.{tsv,md}.
#
# Usage: bash scripts/kvload.sh [--runs N] [--duration S] [--get-rate R] [--scan-rate R]
#                               [--burst N] [--wrk-duration S] [--rows N] [--modes "a b"]
#                               [--out DIR] [--server-args "..."] [--quick] [--replot TSV]
# Defaults: 5 runs, 12 s per phase, 2000 GET/s, 20 scans/s, bursts of 8, wrk 10 s,
# 100,000 rows, out examples/kvserver/results. --quick: 1 run of 5 s phases.
# --replot TSV: no runs, only the summary and chart from an earlier latest.tsv
# (give the options that run used, for the titles).
# More short runs rather than fewer long ones: on a shared machine the other
# processes' bursts land in some phases, and the median of 5 sets them aside.
# The modes take turns within each run, so each sees the same conditions.
# Modes: blockpool, inline, fixed (kvserver --mode), and blockpool-normal:
# blockpool with its scans at normal CPU priority (--scan-priority normal).
# Installs its own packages; builds kvserver and kvbench only (Release, in
# build-kvload/). About 12 minutes with the defaults.
set -euo pipefail
cd "$(dirname "$0")/.."

RUNS=5 DURATION=12 GET_RATE=2000 SCAN_RATE=20 BURST=8 WRK_DURATION=10 ROWS=100000
MODES="blockpool inline fixed" OUT=examples/kvserver/results SERVER_ARGS= REPLOT=
while (($#)); do
  case "$1" in
    --runs) RUNS=$2; shift 2 ;;
    --duration) DURATION=$2; shift 2 ;;
    --get-rate) GET_RATE=$2; shift 2 ;;
    --scan-rate) SCAN_RATE=$2; shift 2 ;;
    --burst) BURST=$2; shift 2 ;;
    --wrk-duration) WRK_DURATION=$2; shift 2 ;;
    --rows) ROWS=$2; shift 2 ;;
    --modes) MODES=$2; shift 2 ;;
    --out) OUT=$2; shift 2 ;;
    --server-args) SERVER_ARGS=$2; shift 2 ;;
    --quick) RUNS=1 DURATION=5 WRK_DURATION=5; shift ;;
    --replot) REPLOT=$2; shift 2 ;;
    -h|--help) sed -n '2,29p' "$0"; exit 0 ;;
    *) echo "kvload.sh: unknown option $1" >&2; exit 2 ;;
  esac
done

# Builds, creates the data set, runs every mode and phase: fills $RAW.
measure() {
  bash scripts/deps.sh build kvload
  BUILD_DIR=${BUILD_DIR:-build-kvload}
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=Release -DBLOCKPOOL_BUILD_TESTS=OFF \
    -DBLOCKPOOL_BUILD_EXAMPLES=ON >/dev/null
  cmake --build "$BUILD_DIR" --target kvserver kvbench -j2
  BIN=$BUILD_DIR/examples/kvserver

  mkdir -p "$OUT"
  WORK=$(mktemp -d /tmp/kvload.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  DB=$WORK/kv.db
  "$BIN/kvserver" --db "$DB" --populate "$ROWS" >&2
  RAW=$OUT/latest.tsv
  printf 'run\tmode\tphase\tget_p50\tget_p99\tget_p999\tget_max\tscan_p50\tscan_p99\trps\terrors\tpeak_threads\tserver_cpu_s\tclient_cpu_s\tothers_cpus\texit\tget_sent_p99\n' >"$RAW"
  TCK=$(getconf CLK_TCK)
  NCPU=$(nproc)

  cpu_busy_total() {  # machine-wide jiffies: "busy total"
    local _ u n s idle iow irq sirq steal
    read -r _ u n s idle iow irq sirq steal _ </proc/stat
    echo "$((u + n + s + irq + sirq + steal)) $((u + n + s + idle + iow + irq + sirq + steal))"
  }

  children_cpu_ticks() {  # CPU of this shell's waited-for descendants (the clients)
    awk '{ print $16 + $17 }' "/proc/$$/stat"
  }

  start_server() {  # mode -> SPID, PORT, SFD
    # blockpool-normal: blockpool with its scans at normal CPU priority.
    local args=(--mode "$1")
    [[ $1 == blockpool-normal ]] && args=(--mode blockpool --scan-priority normal)
    # shellcheck disable=SC2086 # SERVER_ARGS: words on purpose
    exec {SFD}< <(exec "$BIN/kvserver" --db "$DB" --port 0 "${args[@]}" $SERVER_ARGS 2>>"$WORK/server.log")
    SPID=$!
    local line=""
    if ! read -r -t 30 -u "$SFD" line || [[ $line != "listening on "* ]]; then
      echo "kvload.sh: kvserver --mode $1 did not start:" >&2
      cat "$WORK/server.log" >&2
      exit 1
    fi
    PORT=${line##*:}
  }

  stop_server() {  # -> EXIT_STATUS
    kill -TERM "$SPID"
    EXIT_STATUS=0
    wait "$SPID" || EXIT_STATUS=$?
    exec {SFD}<&-
  }

  echo "kvload: $RUNS run(s) x modes [$MODES]; phases of ${DURATION} s at $GET_RATE GET/s," \
    "+ $SCAN_RATE scans/s (evenly, and in bursts of $BURST), wrk ${WRK_DURATION} s; $ROWS rows" >&2
  echo "kvload: load average before: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
  phases="noscans scans"
  ((BURST > 0)) && phases+=" burst"
  command -v wrk >/dev/null && phases+=" wrk"
  for ((run = 1; run <= RUNS; run++)); do
    for mode in $MODES; do
      for phase in $phases; do
        start_server "$mode"
        read -r busy0 total0 < <(cpu_busy_total)
        kids0=$(children_cpu_ticks)
        case $phase in
          noscans|scans|burst)
            args=(--port "$PORT" --duration "$DURATION" --get-rate "$GET_RATE" --keys "$ROWS"
                  --label "$mode/$phase" --tsv)
            case $phase in
              noscans) args+=(--scan-rate 0) ;;
              scans) args+=(--scan-rate "$SCAN_RATE") ;;
              burst) args+=(--scan-rate "$SCAN_RATE" --scan-burst "$BURST") ;;
            esac
            line=$("$BIN/kvbench" "${args[@]}" 2>>"$WORK/kvbench.log")
            IFS=$'\t' read -r _ _ g50 g99 g999 gmax _ s50 s99 rps errors _ _ _ gs99 _ <<<"$line"
            [[ $phase == noscans ]] && s50=- s99=-
            ;;
          wrk)
            line=$(KV_KEYS=$ROWS KV_SCAN_EVERY=100 wrk -t2 -c32 -d"${WRK_DURATION}s" \
                   -s examples/kvserver/kvload.lua "http://127.0.0.1:$PORT" 2>&1 | grep '^WRK' || true)
            IFS=$'\t' read -r _ rps errors _ _ <<<"$line"
            g50=- g99=- g999=- gmax=- s50=- s99=- gs99=-
            ;;
        esac
        peak=$("$BIN/kvbench" --port "$PORT" --stats | awk '$1 == "pool_peak_threads" {print $2}')
        server_cpu=$(awk -v t="$TCK" '{printf "%.3f", ($14 + $15) / t}' "/proc/$SPID/stat")
        read -r busy1 total1 < <(cpu_busy_total)
        client_cpu=$(awk -v a="$kids0" -v b="$(children_cpu_ticks)" -v t="$TCK" 'BEGIN { printf "%.3f", (b - a) / t }')
        others=$(awk -v b=$((busy1 - busy0)) -v t=$((total1 - total0)) -v s="$server_cpu" \
                 -v c="$client_cpu" -v k="$TCK" -v n="$NCPU" \
                 'BEGIN { o = (b - (s + c) * k) / t * n; if (o < 0) o = 0; printf "%.2f", o }')
        stop_server
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$mode" "$phase" \
          "$g50" "$g99" "$g999" "$gmax" "$s50" "$s99" "${rps:-0}" "${errors:-?}" "${peak:-?}" \
          "$server_cpu" "$client_cpu" "$others" "$EXIT_STATUS" "${gs99:--}" >>"$RAW"
        printf 'kvload: run %d %-9s %-7s GET p50 %s p99 %s p99.9 %s ms, scan p50 %s p99 %s ms, %s req/s, %s errors, peak %s threads, others used %s CPUs, exit %s\n' \
          "$run" "$mode" "$phase" "$g50" "$g99" "$g999" "$s50" "$s99" "${rps:-0}" "${errors:-?}" \
          "${peak:-?}" "$others" "$EXIT_STATUS" >&2
      done
    done
  done
  echo "kvload: load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
}

if [[ -n $REPLOT ]]; then  # only the summary and the chart, from an earlier run's TSV
  WORK=$(mktemp -d /tmp/kvload.XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
  RAW=$REPLOT
  mkdir -p "$OUT"
else
  measure
fi

# ---- Medians over the runs, the targets, the chart -------------------------
MD=$OUT/latest.md
awk -F'\t' -v runs="$RUNS" -v dur="$DURATION" -v gr="$GET_RATE" -v sr="$SCAN_RATE" -v burst="$BURST" \
    -v wd="$WRK_DURATION" -v rows="$ROWS" -v dat="$WORK/chart.dat" -v wdat="$WORK/wrk.dat" '
function median(key,   n, i, j, t, a) {
  n = split(vals[key], a, " ")
  if (n == 0 || a[1] == "-" || a[1] == "") return "-"
  for (i = 2; i <= n; i++) { t = a[i] + 0; for (j = i - 1; j >= 1 && a[j] + 0 > t; j--) a[j + 1] = a[j]; a[j + 1] = t }
  return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2
}
NR == 1 { for (i = 1; i <= NF; i++) col[i] = $i; next }
{
  k = $2 SUBSEP $3
  if (!(k in seen)) { seen[k] = 1; order[++nk] = k }
  for (i = 4; i <= NF; i++) vals[k SUBSEP col[i]] = vals[k SUBSEP col[i]] (vals[k SUBSEP col[i]] == "" ? "" : " ") $i
  if ($11 != "0" && $3 != "wrk") errs += ($11 == "?" ? 1 : $11)
  if ($16 != "0") badexit++
}
END {
  printf "kvserver load test: medians of %d run(s); open loop %d GET/s + %d scans/s, %d s per phase; bursts of %d; wrk %d s; %d rows\n\n", runs, gr, sr, dur, burst, wd, rows
  print "| mode | phase | GET p50 ms | GET p99 ms | GET p99.9 ms | GET p99 from send ms | scan p50 ms | scan p99 ms | req/s | errors | peak pool threads | CPUs used by others |"
  print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
  for (i = 1; i <= nk; i++) {
    split(order[i], mp, SUBSEP); k = order[i]
    printf "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", mp[1], mp[2],
      median(k SUBSEP "get_p50"), median(k SUBSEP "get_p99"), median(k SUBSEP "get_p999"), median(k SUBSEP "get_sent_p99"),
      median(k SUBSEP "scan_p50"), median(k SUBSEP "scan_p99"), median(k SUBSEP "rps"),
      median(k SUBSEP "errors"), median(k SUBSEP "peak_threads"), median(k SUBSEP "others_cpus")
    if (mp[2] != "wrk")
      printf "\"%s %s\" %s %s %s %s %s\n", mp[1], mp[2], median(k SUBSEP "get_p50"), median(k SUBSEP "get_p99"),
        median(k SUBSEP "get_p999"), median(k SUBSEP "scan_p50"), median(k SUBSEP "scan_p99") > dat
    else
      printf "\"%s\" %s\n", mp[1], median(k SUBSEP "rps") > wdat
  }
  print ""
  print "GET p99 with scans / GET p99 without (same run medians):"
  for (i = 1; i <= nk; i++) {
    split(order[i], mp, SUBSEP)
    if (mp[2] != "noscans") continue
    base = median(order[i] SUBSEP "get_p99")
    line = sprintf("- %s:", mp[1])
    if ((mp[1] SUBSEP "scans") in seen) { r = median(mp[1] SUBSEP "scans" SUBSEP "get_p99") / base; line = line sprintf(" scans %.2fx", r); ratio[mp[1]] = r }
    if ((mp[1] SUBSEP "burst") in seen) line = line sprintf(", bursts %.2fx", median(mp[1] SUBSEP "burst" SUBSEP "get_p99") / base)
    if (mp[1] == "blockpool" && (mp[1] SUBSEP "scans") in seen)
      line = line sprintf(" (target: at most 2x: %s)", ratio[mp[1]] <= 2 ? "met" : "MISSED")
    sbase = median(order[i] SUBSEP "get_sent_p99")
    if ((mp[1] SUBSEP "scans") in seen && sbase != "-" && sbase > 0)
      line = line sprintf("; from the send: scans %.2fx", median(mp[1] SUBSEP "scans" SUBSEP "get_sent_p99") / sbase)
    print line
  }
  printf "- errors in the open-loop phases, all runs: %d (target 0: %s)\n", errs, errs == 0 ? "met" : "MISSED"
  printf "- server exits other than 0 after SIGTERM: %d\n", badexit
}' "$RAW" | tee "$MD"

if command -v gnuplot >/dev/null && [[ -s $WORK/chart.dat ]]; then
  # Two latency panels, and wrk's throughput when wrk ran.
  if [[ -s $WORK/wrk.dat ]]; then lat_w=0.8; width=1700; else lat_w=1.0; width=1360; fi
  get_w=$(awk -v f="$lat_w" 'BEGIN { printf "%.3f", f * 0.58 }')
  scan_w=$(awk -v f="$lat_w" 'BEGIN { printf "%.3f", f * 0.42 }')
  {
    echo "set terminal pngcairo noenhanced size $width,600 font 'sans,10'"
    echo "set output '$OUT/chart.png'"
    echo "set multiplot title 'kvserver: medians of $RUNS run(s); open loop $GET_RATE GET/s + $SCAN_RATE scans/s (evenly, or in bursts of $BURST)' font 'sans,12'"
    echo "set style data histogram"
    echo "set style histogram clustered gap 1"
    echo "set style fill solid 0.85 border -1"
    echo "set boxwidth 0.9"
    echo "set logscale y"
    echo "set grid ytics"
    echo "set key top left font 'sans,8' samplen 1.5"
    echo "set xtics nomirror rotate by 35 right font 'sans,8'"
    echo "set datafile missing '-'"
    echo "set bmargin 7"
    echo "set ylabel 'milliseconds'"
    echo "set origin 0,0"
    echo "set size $get_w,0.94"
    echo "set title 'GET latency from the scheduled send (lower is better)'"
    echo "plot '$WORK/chart.dat' using 2:xtic(1) title 'p50' lc rgb '#9ecae1', '' using 3 title 'p99' lc rgb '#3182bd', '' using 4 title 'p99.9' lc rgb '#08519c'"
    echo "set origin $get_w,0"
    echo "set size $scan_w,0.94"
    echo "set title 'scan latency (lower is better)'"
    echo "plot '$WORK/chart.dat' using 5:xtic(1) title 'p50' lc rgb '#fdae6b', '' using 6 title 'p99' lc rgb '#e6550d'"
    if [[ -s $WORK/wrk.dat ]]; then
      echo "set origin 0.8,0"
      echo "set size 0.2,0.94"
      echo "unset logscale y"
      echo "set yrange [0:*]"
      echo "set ylabel 'requests/s'"
      echo "set title 'wrk, 32 connections (higher is better)'"
      echo "plot '$WORK/wrk.dat' using 2:xtic(1) notitle lc rgb '#d62728'"
    fi
    echo "unset multiplot"
  } >"$WORK/chart.gp"
  gnuplot "$WORK/chart.gp" && echo "kvload: wrote $OUT/chart.png, $MD, $RAW" >&2
else
  echo "kvload: gnuplot not found or no data: no chart" >&2
fi
