// blockpool/prometheus.hpp: a Metrics snapshot in Prometheus' text format.
//
//   std::string text = blockpool::to_prometheus(pool.metrics());
//   // serve it on GET /metrics
//
// Text exposition format 0.0.4, which `promtool check metrics` accepts.
// Metric names start with `blockpool_`; durations are in seconds; counters
// end in `_total`; lanes are a `lane` label ("" is the default lane). The
// queue-wait and run-time histograms are exported with fixed bucket bounds
// (1 us to about 1 hour, doubling), so series stay the same from scrape to
// scrape. `extra_labels` (say `pool="db"`) is added to every sample, for
// programs that run several pools.
#pragma once

#include <string>
#include <string_view>

#include "blockpool/metrics.hpp"

namespace blockpool {

// `extra_labels`: empty, or label pairs in Prometheus syntax without braces,
// e.g. `pool="db"` or `pool="db",zone="a"` (the caller escapes values).
std::string to_prometheus(const Metrics& metrics, std::string_view extra_labels = {});

}  // namespace blockpool
