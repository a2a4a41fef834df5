// src/prometheus.cpp: Metrics in Prometheus' text exposition format 0.0.4.
#include "blockpool/prometheus.hpp"

#include <chrono>
#include <cstdio>
#include <string>

namespace blockpool {

namespace {

// A label value, escaped as the text format requires (\\, \" and \n).
std::string escape(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string number(double v) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

std::string number(std::uint64_t v) { return std::to_string(v); }

double seconds(std::chrono::nanoseconds d) { return static_cast<double>(d.count()) / 1e9; }

class Writer {
 public:
  explicit Writer(std::string_view extra) : extra_(extra) {}

  void family(std::string_view name, std::string_view type, std::string_view help) {
    out_ += "# HELP ";
    out_ += name;
    out_ += ' ';
    out_ += help;
    out_ += "\n# TYPE ";
    out_ += name;
    out_ += ' ';
    out_ += type;
    out_ += '\n';
  }
  // One sample: `name{labels} value`, with the extra labels first.
  void sample(std::string_view name, std::string_view labels, const std::string& value) {
    out_ += name;
    std::string all(extra_);
    if (!labels.empty()) {
      if (!all.empty()) all += ',';
      all += labels;
    }
    if (!all.empty()) {
      out_ += '{';
      out_ += all;
      out_ += '}';
    }
    out_ += ' ';
    out_ += value;
    out_ += '\n';
  }
  std::string take() { return std::move(out_); }

 private:
  std::string_view extra_;
  std::string out_;
};

std::string lane_label(const LaneMetrics& lane) { return "lane=\"" + escape(lane.name) + "\""; }

// Fixed bucket bounds, so that series stay the same from scrape to scrape:
// 1 us doubling to about 72 minutes.
constexpr int kBounds = 33;
double bound_seconds(int k) { return 1e-6 * static_cast<double>(std::uint64_t{1} << k); }

void histogram(Writer& w, std::string_view name, const std::string& lane, const Histogram& h) {
  const std::string bucket = std::string(name) + "_bucket";
  for (int k = 0; k < kBounds; ++k) {
    const double le = bound_seconds(k);
    const auto le_ns = std::chrono::nanoseconds(static_cast<std::int64_t>(le * 1e9));
    w.sample(bucket, lane + ",le=\"" + number(le) + "\"", number(h.cumulative(le_ns)));
  }
  w.sample(bucket, lane + ",le=\"+Inf\"", number(h.count()));
  w.sample(std::string(name) + "_sum", lane, number(seconds(h.sum())));
  w.sample(std::string(name) + "_count", lane, number(h.count()));
}

}  // namespace

std::string to_prometheus(const Metrics& m, std::string_view extra_labels) {
  Writer w(extra_labels);
  auto gauge = [&](std::string_view name, std::string_view help, std::uint64_t v) {
    w.family(name, "gauge", help);
    w.sample(name, {}, number(v));
  };
  auto counter = [&](std::string_view name, std::string_view help, std::uint64_t v) {
    w.family(name, "counter", help);
    w.sample(name, {}, number(v));
  };
  gauge("blockpool_threads", "Worker threads alive.", m.threads);
  gauge("blockpool_idle_threads", "Worker threads parked, waiting for work.", m.idle_threads);
  gauge("blockpool_peak_threads", "The most worker threads alive at once.", m.peak_threads);
  gauge("blockpool_admission_waiting", "Operations waiting for room in a full queue.", m.admission_waiting);
  counter("blockpool_threads_started_total", "Worker threads started.", m.threads_started);
  counter("blockpool_threads_retired_total", "Worker threads that exited while the pool ran (keep-alive, background priority not restorable).",
          m.threads_retired);
  counter("blockpool_spawn_failures_total", "Thread creations the OS refused.", m.spawn_failures);
  counter("blockpool_hook_errors_total", "Exceptions caught from hooks and callbacks.", m.hook_errors);
  counter("blockpool_slow_tasks_total", "Tasks reported to the slow-task watchdog.", m.slow_tasks);

  auto per_lane = [&](std::string_view name, std::string_view type, std::string_view help, auto field) {
    w.family(name, type, help);
    for (const LaneMetrics& lane : m.lanes) w.sample(name, lane_label(lane), number(field(lane)));
  };
  per_lane("blockpool_tasks_running", "gauge", "Tasks running now.", [](const LaneMetrics& l) { return l.running; });
  per_lane("blockpool_queue_depth", "gauge", "Tasks waiting to start.",
           [](const LaneMetrics& l) { return l.queue_depth; });
  per_lane("blockpool_tasks_spawned_total", "counter", "Tasks spawned.", [](const LaneMetrics& l) { return l.spawned; });
  per_lane("blockpool_tasks_completed_total", "counter", "Tasks whose callable returned.",
           [](const LaneMetrics& l) { return l.completed; });
  per_lane("blockpool_tasks_failed_total", "counter", "Tasks whose callable threw, or that got no thread.",
           [](const LaneMetrics& l) { return l.failed; });
  per_lane("blockpool_tasks_cancelled_total", "counter", "Tasks cancelled before they started.",
           [](const LaneMetrics& l) { return l.cancelled; });
  per_lane("blockpool_tasks_rejected_total", "counter", "Spawns refused by a full queue.",
           [](const LaneMetrics& l) { return l.rejected; });

  w.family("blockpool_queue_wait_seconds", "histogram", "Time from spawn to start, of every task that started.");
  for (const LaneMetrics& lane : m.lanes) histogram(w, "blockpool_queue_wait_seconds", lane_label(lane), lane.queue_wait);
  w.family("blockpool_run_time_seconds", "histogram", "Time from start to end, of every task that ran.");
  for (const LaneMetrics& lane : m.lanes) histogram(w, "blockpool_run_time_seconds", lane_label(lane), lane.run_time);
  return w.take();
}

}  // namespace blockpool
