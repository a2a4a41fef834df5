// Tokio peer of the blockpool comparative benchmark.
//
//   tokio_bench <flood|roundtrip|burst|contended|paced|idle> [--quick] [variant options]
//
// The variant options are bench/peers/scenarios.hpp's (--loop cv|epoll,
// --spawners N, --order after|before|random, --long-ms N, --long-every N,
// --ticks N, --seed N); see there. --loop epoll builds the runtime with its
// I/O driver (enable_io: the loop parks in epoll_wait through mio); cv, the
// default, with its timer only (it parks on a condition variable).
//
// The event loop is a current_thread runtime (the thread that calls
// block_on); tasks go to Tokio's blocking pool with spawn_blocking and the
// loop awaits their JoinHandles (directly, or from spawn_local futures when
// completions must be observed as they come). Each completion checks that it
// runs on the loop thread and adds the task's value to a checksum.
//
// Workload numbers mirror bench/peers/scenarios.hpp; change both together.
// Measurement rules mirror bench/peers/measure.hpp: process CPU from
// getrusage(RUSAGE_SELF) minus the sampler thread's own CPU; peak threads
// from /proc/self/status sampled every ~1 ms, minus the harness's own threads
// (the loop thread, the sampler, and the spawner threads of "contended").

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use tokio::runtime::{Builder, Runtime};
use tokio::sync::Notify;
use tokio::task::{spawn_blocking, spawn_local, LocalSet};

// ---- scenarios.hpp mirror ----------------------------------------------------
struct Params {
    flood_n: u64,
    rt_n: u64,
    burst_n: u64,
    burst_sleep_ms: u64,
    cont_threads: u64,
    cont_total: u64,
    cont_per: u64,
    paced_ticks: u64,
    paced_tick_us: u64,
    paced_tiny: u64,
    paced_long_every: u64,
    paced_long_n: u64,
    paced_long_ms: u64,
    paced_order: Order,
    paced_seed: u64,
    idle_ms: u64,
    idle_check_ms: u64,
    keep_alive_ms: u64,
    loop_epoll: bool,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Order {
    After,
    Before,
    Random,
}

fn order_name(o: Order) -> &'static str {
    match o {
        Order::After => "after",
        Order::Before => "before",
        Order::Random => "random",
    }
}

fn params(quick: bool) -> Params {
    let mut p = Params {
        flood_n: 200_000,
        rt_n: 20_000,
        burst_n: 256,
        burst_sleep_ms: 20,
        cont_threads: 4,
        cont_total: 200_000,
        cont_per: 50_000,
        paced_ticks: 2_000,
        paced_tick_us: 1_000,
        paced_tiny: 10,
        paced_long_every: 10,
        paced_long_n: 2,
        paced_long_ms: 50,
        paced_order: Order::After,
        paced_seed: 1,
        idle_ms: 2_000,
        idle_check_ms: 1_500,
        keep_alive_ms: 1_000,
        loop_epoll: false,
    };
    if quick {
        p.flood_n = 20_000;
        p.rt_n = 2_000;
        p.burst_n = 64;
        p.cont_total = 20_000;
        p.cont_per = 5_000;
        p.paced_ticks = 300;
        p.idle_ms = 600;
        p.idle_check_ms = 450;
        p.keep_alive_ms = 300;
    }
    p
}

const USAGE: &str = "usage: tokio_bench <flood|roundtrip|burst|contended|paced|idle> [--quick] \
[--loop cv|epoll] [--spawners N] [--order after|before|random] [--long-ms N] [--long-every N] \
[--ticks N] [--seed N]";

// scenarios.hpp's parse_args: the scenario, then --quick and the variant options.
fn parse_args(args: &[String]) -> Result<(String, Params), String> {
    let scenario = args.get(1).cloned().unwrap_or_default();
    let quick = args.iter().skip(2).any(|a| a == "--quick");
    let mut p = params(quick);
    let mut spawners_set = false;
    let mut i = 2;
    while i < args.len() {
        let opt = args[i].as_str();
        i += 1;
        if opt == "--quick" {
            continue;
        }
        let val = args.get(i).ok_or_else(|| format!("option {} needs a value", opt))?.as_str();
        i += 1;
        let number = |lo: u64, hi: u64| -> Result<u64, String> {
            match val.parse::<u64>() {
                Ok(n) if n >= lo && n <= hi => Ok(n),
                _ => Err(format!("bad value '{}' for {}", val, opt)),
            }
        };
        match opt {
            "--loop" => {
                p.loop_epoll = match val {
                    "cv" => false,
                    "epoll" => true,
                    _ => return Err("--loop takes cv or epoll".into()),
                }
            }
            "--order" => {
                p.paced_order = match val {
                    "after" => Order::After,
                    "before" => Order::Before,
                    "random" => Order::Random,
                    _ => return Err("--order takes after, before or random".into()),
                }
            }
            "--spawners" => {
                p.cont_threads = number(1, 256)?;
                spawners_set = true;
            }
            "--long-ms" => p.paced_long_ms = number(0, 60_000)?,
            "--long-every" => p.paced_long_every = number(1, 1_000_000)?,
            "--ticks" => p.paced_ticks = number(1, 1_000_000)?,
            "--seed" => p.paced_seed = number(0, u64::MAX)?,
            _ => return Err(format!("unknown option {}", opt)),
        }
    }
    if spawners_set {
        p.cont_per = p.cont_total / p.cont_threads;
    }
    Ok((scenario, p))
}

// scenarios.hpp's mix64 (splitmix64) and tick_plan: tick k's spawns in
// order, 0 for a tiny task and 1 for a long one.
fn mix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

fn tick_plan(p: &Params, k: u64, kinds: &mut Vec<u8>) {
    kinds.clear();
    let longs = if k % p.paced_long_every == 0 { p.paced_long_n } else { 0 };
    if p.paced_order == Order::Before {
        kinds.extend(std::iter::repeat(1u8).take(longs as usize));
    }
    kinds.extend(std::iter::repeat(0u8).take(p.paced_tiny as usize));
    if p.paced_order != Order::Before {
        kinds.extend(std::iter::repeat(1u8).take(longs as usize));
    }
    if p.paced_order == Order::Random && longs != 0 {
        let mut state = mix64(p.paced_seed ^ mix64(k));
        for i in (1..kinds.len()).rev() {
            state = mix64(state);
            kinds.swap(i, (state % (i as u64 + 1)) as usize);
        }
    }
}

#[inline]
fn task_value(i: u64) -> u64 {
    (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 7
}

fn expected_sum(first: u64, count: u64) -> u64 {
    (first..first + count).fold(0u64, |s, i| s.wrapping_add(task_value(i)))
}

// ---- measure.hpp mirror --------------------------------------------------------
fn proc_threads() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    for line in s.lines() {
        if let Some(rest) = line.strip_prefix("Threads:") {
            return rest.trim().parse().unwrap_or(0);
        }
    }
    0
}

fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

#[derive(Clone, Copy)]
struct Usage {
    cpu_s: f64,
    csw: u64,
}

fn usage() -> Usage {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    Usage {
        cpu_s: tv(ru.ru_utime) + tv(ru.ru_stime),
        csw: (ru.ru_nvcsw + ru.ru_nivcsw) as u64,
    }
}

struct Sampler {
    stop: Arc<AtomicBool>,
    peak: Arc<AtomicU64>,
    th: Option<std::thread::JoinHandle<f64>>,
}

impl Sampler {
    fn start() -> Sampler {
        let stop = Arc::new(AtomicBool::new(false));
        let peak = Arc::new(AtomicU64::new(0));
        let (s2, p2) = (stop.clone(), peak.clone());
        let th = std::thread::spawn(move || {
            while !s2.load(Ordering::Relaxed) {
                p2.fetch_max(proc_threads(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(1));
            }
            p2.fetch_max(proc_threads(), Ordering::Relaxed);
            thread_cpu_s()
        });
        // Wait for the first sample so the sampler itself is counted.
        while peak.load(Ordering::Relaxed) == 0 {
            std::thread::yield_now();
        }
        Sampler { stop, peak, th: Some(th) }
    }
    // (peak process threads, the sampler's own CPU seconds)
    fn stop(mut self) -> (u64, f64) {
        self.stop.store(true, Ordering::Relaxed);
        let cpu = self.th.take().unwrap().join().unwrap();
        (self.peak.load(Ordering::Relaxed), cpu)
    }
}

fn percentile_us(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx] as f64 / 1000.0
}

// What the loop observed.
struct Stats {
    loop_tid: ThreadId,
    count: u64,
    sum: u64,
    offloop: u64,
    lat_ns: Vec<u64>,
    target: u64,
}

impl Stats {
    fn new(target: u64) -> Rc<RefCell<Stats>> {
        Rc::new(RefCell::new(Stats {
            loop_tid: std::thread::current().id(),
            count: 0,
            sum: 0,
            offloop: 0,
            lat_ns: latency_buffer(target),
            target,
        }))
    }
}

// An empty vector with room for `n` latencies, its pages already faulted in
// (every element written once): growing it on the loop during a run would be
// timed as the latency of whichever task pushed at that moment.
fn latency_buffer(n: u64) -> Vec<u64> {
    let mut v = vec![u64::MAX; n as usize];
    v.clear();
    v
}

// Called on the loop for each completion; returns true on the last one.
fn complete(st: &RefCell<Stats>, v: u64) -> bool {
    let mut s = st.borrow_mut();
    if std::thread::current().id() != s.loop_tid {
        s.offloop += 1;
    }
    s.count += 1;
    s.sum = s.sum.wrapping_add(v);
    s.count == s.target
}

struct Out {
    fields: Vec<(String, String)>,
}

impl Out {
    fn new(scenario: &str) -> Out {
        let mut o = Out { fields: Vec::new() };
        o.s("peer", "tokio");
        o.s("scenario", scenario);
        o
    }
    fn s(&mut self, k: &str, v: &str) {
        self.fields.push((k.into(), format!("\"{}\"", v)));
    }
    fn n(&mut self, k: &str, v: f64) {
        self.fields.push((k.into(), format!("{}", v)));
    }
    fn i(&mut self, k: &str, v: i64) {
        self.fields.push((k.into(), format!("{}", v)));
    }
    fn b(&mut self, k: &str, v: bool) {
        self.fields.push((k.into(), format!("{}", v)));
    }
    fn print(&self) {
        let body: Vec<String> = self
            .fields
            .iter()
            .map(|(k, v)| format!("\"{}\":{}", k, v))
            .collect();
        println!("{{{}}}", body.join(","));
    }
}

fn finish_common(
    out: &mut Out,
    st: &RefCell<Stats>,
    first: u64,
    harness_threads: u64,
    wall: Duration,
    u0: Usage,
    u1: Usage,
    peak: u64,
    sampler_cpu: f64,
) {
    let s = st.borrow();
    let ok = s.count == s.target && s.sum == expected_sum(first, s.target) && s.offloop == 0;
    out.b("ok", ok);
    out.i("count", s.count as i64);
    out.i("offloop", s.offloop as i64);
    out.n("wall_s", wall.as_secs_f64());
    out.n("cpu_s", (u1.cpu_s - u0.cpu_s - sampler_cpu).max(0.0));
    out.i("csw", (u1.csw - u0.csw) as i64);
    out.i("peak_threads", peak as i64 - harness_threads as i64);
}

fn runtime(keep_alive: Option<Duration>, epoll: bool) -> Runtime {
    let mut b = Builder::new_current_thread();
    b.enable_time();
    if epoll {
        b.enable_io();
    }
    if let Some(ka) = keep_alive {
        b.thread_keep_alive(ka);
    }
    b.build().expect("runtime")
}

fn sleep_task(ms: u64, i: u64) -> u64 {
    std::thread::sleep(Duration::from_millis(ms));
    task_value(i)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (scenario, p) = match parse_args(&args) {
        Ok(v) => v,
        Err(e) => {
            eprintln!("tokio_bench: {}\n{}", e, USAGE);
            std::process::exit(2);
        }
    };
    let mut out = Out::new(&scenario);
    out.s("tokio", "1.24.2");
    // scenarios.hpp's describe(): the variant this run measured.
    out.s("loop", if p.loop_epoll { "epoll" } else { "cv" });
    if scenario == "contended" {
        out.i("spawners", p.cont_threads as i64);
        out.i("per_spawner", p.cont_per as i64);
    } else if scenario == "paced" {
        out.s("order", order_name(p.paced_order));
        out.i("long_ms", p.paced_long_ms as i64);
        out.i("long_every", p.paced_long_every as i64);
        out.i("ticks", p.paced_ticks as i64);
    }
    let epoll = p.loop_epoll;

    match scenario.as_str() {
        "flood" | "burst" => {
            let rt = runtime(None, epoll);
            let local = LocalSet::new();
            let (n, sleep_ms) = if scenario == "flood" {
                (p.flood_n, 0)
            } else {
                (p.burst_n, p.burst_sleep_ms)
            };
            let st = Stats::new(n);
            let sampler = Sampler::start();
            let u0 = usage();
            let t0 = Instant::now();
            local.block_on(&rt, async {
                let mut hs = Vec::with_capacity(n as usize);
                for i in 0..n {
                    hs.push(if sleep_ms == 0 {
                        spawn_blocking(move || task_value(i))
                    } else {
                        spawn_blocking(move || sleep_task(sleep_ms, i))
                    });
                }
                for h in hs {
                    complete(&st, h.await.expect("join"));
                }
            });
            let wall = t0.elapsed();
            let u1 = usage();
            let (peak, scpu) = sampler.stop();
            finish_common(&mut out, &st, 0, 2, wall, u0, u1, peak, scpu);
            if scenario == "flood" {
                out.n("rate", n as f64 / wall.as_secs_f64());
            }
        }
        "roundtrip" => {
            let rt = runtime(None, epoll);
            let local = LocalSet::new();
            let n = p.rt_n;
            let st = Stats::new(n);
            let sampler = Sampler::start();
            let u0 = usage();
            let t0 = Instant::now();
            local.block_on(&rt, async {
                let mut lat = latency_buffer(n);
                for i in 0..n {
                    let ts = Instant::now();
                    let v = spawn_blocking(move || task_value(i)).await.expect("join");
                    complete(&st, v);
                    lat.push(ts.elapsed().as_nanos() as u64);
                }
                st.borrow_mut().lat_ns = lat;
            });
            let wall = t0.elapsed();
            let u1 = usage();
            let (peak, scpu) = sampler.stop();
            finish_common(&mut out, &st, 0, 2, wall, u0, u1, peak, scpu);
            let mut lat = std::mem::take(&mut st.borrow_mut().lat_ns);
            lat.sort_unstable();
            out.n("p50_us", percentile_us(&lat, 0.50));
            out.n("p99_us", percentile_us(&lat, 0.99));
            out.n("max_us", percentile_us(&lat, 1.0));
        }
        "contended" => {
            let rt = runtime(None, epoll);
            let local = LocalSet::new();
            let total = p.cont_threads * p.cont_per;
            let st = Stats::new(total);
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            // Spawner threads stay alive until the loop is done, so the harness's
            // own thread count is constant (loop + sampler + spawners) while sampling.
            let barrier = Arc::new(Barrier::new(p.cont_threads as usize + 1));
            let finished = Arc::new(Barrier::new(p.cont_threads as usize + 1));
            let mut spawners = Vec::new();
            for t in 0..p.cont_threads {
                let (h, tx, b, f, per) =
                    (rt.handle().clone(), tx.clone(), barrier.clone(), finished.clone(), p.cont_per);
                spawners.push(std::thread::spawn(move || {
                    b.wait();
                    for k in 0..per {
                        let i = t * per + k;
                        let _ = tx.send(h.spawn_blocking(move || task_value(i)));
                    }
                    drop(tx);
                    f.wait();
                }));
            }
            drop(tx);
            let sampler = Sampler::start();
            let u0 = usage();
            let t0 = Instant::now();
            barrier.wait();
            local.block_on(&rt, async {
                while let Some(h) = rx.recv().await {
                    if complete(&st, h.await.expect("join")) {
                        break;
                    }
                }
            });
            let wall = t0.elapsed();
            let u1 = usage();
            let (peak, scpu) = sampler.stop();
            finished.wait();
            for s in spawners {
                s.join().unwrap();
            }
            finish_common(&mut out, &st, 0, 2 + p.cont_threads, wall, u0, u1, peak, scpu);
            out.n("rate", total as f64 / wall.as_secs_f64());
        }
        "paced" => {
            let rt = runtime(None, epoll);
            let local = LocalSet::new();
            let longs = (p.paced_ticks + p.paced_long_every - 1) / p.paced_long_every * p.paced_long_n; // paced_longs()
            let tinies = p.paced_ticks * p.paced_tiny;
            let total = tinies + longs;
            let st = Stats::new(total);
            let done = Rc::new(Notify::new());
            let sampler = Sampler::start();
            let u0 = usage();
            let t0 = Instant::now();
            local.block_on(&rt, async {
                let tick = Duration::from_micros(p.paced_tick_us);
                let mut issued: u64 = 0;
                let mut id: u64 = 0;
                let mut plan: Vec<u8> = Vec::with_capacity((p.paced_tiny + p.paced_long_n) as usize);
                while issued < p.paced_ticks {
                    let now = Instant::now();
                    // Issue every tick that is due (tick k is due at t0 + k*tick).
                    while issued < p.paced_ticks && t0 + tick * issued as u32 <= now {
                        tick_plan(&p, issued, &mut plan);
                        for &kind in plan.iter() {
                            let i = id;
                            id += 1;
                            let (st, done) = (st.clone(), done.clone());
                            if kind == 0 {
                                let ts = Instant::now();
                                let h = spawn_blocking(move || task_value(i));
                                spawn_local(async move {
                                    let v = h.await.expect("join");
                                    st.borrow_mut().lat_ns.push(ts.elapsed().as_nanos() as u64);
                                    if complete(&st, v) {
                                        done.notify_one();
                                    }
                                });
                            } else {
                                let ms = p.paced_long_ms;
                                let h = spawn_blocking(move || sleep_task(ms, i));
                                spawn_local(async move {
                                    if complete(&st, h.await.expect("join")) {
                                        done.notify_one();
                                    }
                                });
                            }
                        }
                        issued += 1;
                    }
                    if issued < p.paced_ticks {
                        tokio::time::sleep_until((t0 + tick * issued as u32).into()).await;
                    }
                }
                if st.borrow().count < total {
                    done.notified().await;
                }
            });
            let wall = t0.elapsed();
            let u1 = usage();
            let (peak, scpu) = sampler.stop();
            finish_common(&mut out, &st, 0, 2, wall, u0, u1, peak, scpu);
            let mut lat = std::mem::take(&mut st.borrow_mut().lat_ns);
            lat.sort_unstable();
            out.i("tiny", lat.len() as i64);
            out.n("p50_us", percentile_us(&lat, 0.50));
            out.n("p99_us", percentile_us(&lat, 0.99));
            out.n("max_us", percentile_us(&lat, 1.0));
        }
        "idle" => {
            let ka = Duration::from_millis(p.keep_alive_ms);
            let rt = runtime(Some(ka), epoll);
            let local = LocalSet::new();
            let n = p.burst_n;
            let st = Stats::new(n);
            let sampler = Sampler::start();
            let ub = usage();
            let tb = Instant::now();
            local.block_on(&rt, async {
                let mut hs = Vec::with_capacity(n as usize);
                for i in 0..n {
                    let ms = p.burst_sleep_ms;
                    hs.push(spawn_blocking(move || sleep_task(ms, i)));
                }
                for h in hs {
                    complete(&st, h.await.expect("join"));
                }
            });
            let burst_wall = tb.elapsed();
            let (peak, scpu) = sampler.stop();
            let ube = usage();
            // The idle window: no sampler; the loop sleeps on the runtime's timer.
            let threads_after = proc_threads() - 1;
            let u0 = usage();
            let t0 = Instant::now();
            let mut threads_check = 0;
            local.block_on(&rt, async {
                tokio::time::sleep_until((t0 + Duration::from_millis(p.idle_check_ms)).into()).await;
                threads_check = proc_threads() - 1;
                tokio::time::sleep_until((t0 + Duration::from_millis(p.idle_ms)).into()).await;
            });
            let u1 = usage();
            let wall = t0.elapsed();
            finish_common(&mut out, &st, 0, 2, wall, u0, u1, peak, 0.0);
            out.n("burst_wall_s", burst_wall.as_secs_f64());
            out.n("burst_cpu_s", (ube.cpu_s - ub.cpu_s - scpu).max(0.0));
            out.i("threads_after_burst", threads_after as i64);
            out.i("threads_left", threads_check as i64);
            out.i("threads_end", proc_threads() as i64 - 1);
            out.i("keep_alive_ms", p.keep_alive_ms as i64);
        }
        _ => {
            eprintln!("{}", USAGE);
            std::process::exit(2);
        }
    }
    out.print();
}
