// src/cpu_limit.hpp: how many CPUs the process may use, from the texts of the
// files that say so (not a public header).
//
// Two limits apply, and the tighter one wins:
//   * the affinity mask (sched_getaffinity: taskset, a container's cpuset);
//   * the CPU bandwidth quota of the process's cgroup and of every cgroup above
//     it: cgroup v2's cpu.max ("$MAX $PERIOD", $MAX "max" for none), cgroup v1's
//     cpu.cfs_quota_us (-1 for none) over cpu.cfs_period_us. A quota of 1.5
//     periods is 2 CPUs (rounded up): the process can keep 2 threads running.
// Everything here is a pure function of file contents; core.cpp's
// usable_cpus() reads the files (tests/cpu_limit_test.cpp feeds it texts).
#pragma once

#include <algorithm>
#include <charconv>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace blockpool::detail::cpu_limit {

// The CPUs a quota of `quota` per `period` keeps busy, rounded up; 0 (no
// limit) unless both are positive.
constexpr std::size_t cpus_for_quota(std::int64_t quota, std::int64_t period) noexcept {
  if (quota <= 0 || period <= 0) return 0;
  return static_cast<std::size_t>(quota / period + (quota % period != 0 ? 1 : 0));
}

// The tighter of two limits, 0 meaning "no limit".
constexpr std::size_t tighter(std::size_t a, std::size_t b) noexcept {
  if (a == 0) return b;
  if (b == 0) return a;
  return std::min(a, b);
}

// CPUs usable by the process: its affinity count lowered to its quota's
// (either 0 when unknown or unlimited), never below 1.
constexpr std::size_t usable(std::size_t affinity, std::size_t quota) noexcept {
  const std::size_t n = tighter(affinity, quota);
  return n == 0 ? 1 : n;
}

namespace text {

inline std::string_view trim(std::string_view s) noexcept {
  const auto space = [](char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; };
  while (!s.empty() && space(s.front())) s.remove_prefix(1);
  while (!s.empty() && space(s.back())) s.remove_suffix(1);
  return s;
}

// A whole (trimmed) decimal integer, or nothing.
inline std::optional<std::int64_t> integer(std::string_view s) noexcept {
  s = trim(s);
  std::int64_t v = 0;
  const char* end = s.data() + s.size();
  const auto r = std::from_chars(s.data(), end, v);
  if (s.empty() || r.ec != std::errc{} || r.ptr != end) return std::nullopt;
  return v;
}

// The next line of `s` (without its newline), consumed from `s`.
inline std::string_view next_line(std::string_view& s) noexcept {
  const auto nl = s.find('\n');
  const std::string_view line = s.substr(0, nl);
  s.remove_prefix(nl == std::string_view::npos ? s.size() : nl + 1);
  return line;
}

// The next space-separated field of `s`, consumed from `s`.
inline std::string_view next_field(std::string_view& s) noexcept {
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  const auto sp = s.find(' ');
  const std::string_view f = s.substr(0, sp);
  s.remove_prefix(sp == std::string_view::npos ? s.size() : sp);
  return f;
}

// Whether the comma-separated list `list` has the item `item`.
inline bool has_item(std::string_view list, std::string_view item) noexcept {
  while (!list.empty()) {
    const auto comma = list.find(',');
    if (list.substr(0, comma) == item) return true;
    if (comma == std::string_view::npos) break;
    list.remove_prefix(comma + 1);
  }
  return false;
}

// mountinfo escapes space, tab, newline and backslash in paths as \ooo.
inline std::string unescape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto octal = [&](std::size_t k) { return s[k] >= '0' && s[k] <= '7'; };
    if (s[i] == '\\' && i + 3 < s.size() && octal(i + 1) && octal(i + 2) && octal(i + 3)) {
      out += static_cast<char>((s[i + 1] - '0') * 64 + (s[i + 2] - '0') * 8 + (s[i + 3] - '0'));
      i += 3;
    } else {
      out += s[i];
    }
  }
  return out;
}

}  // namespace text

// cgroup v2's cpu.max: the CPUs its quota allows, 0 for "max" (no limit) or a
// text that is not "$MAX $PERIOD".
inline std::size_t cpus_from_cpu_max(std::string_view contents) noexcept {
  std::string_view s = text::trim(contents);
  const std::string_view max = text::next_field(s);
  if (max == "max") return 0;
  const auto quota = text::integer(max);
  const auto period = text::integer(s);
  return quota && period ? cpus_for_quota(*quota, *period) : 0;
}

// cgroup v1's cpu.cfs_quota_us (-1: no limit) over cpu.cfs_period_us; 0 for
// no limit or unreadable texts.
inline std::size_t cpus_from_cfs(std::string_view quota_us, std::string_view period_us) noexcept {
  const auto quota = text::integer(quota_us);
  const auto period = text::integer(period_us);
  return quota && period ? cpus_for_quota(*quota, *period) : 0;
}

// The process's cgroups, from /proc/self/cgroup ("ID:controllers:path" per
// hierarchy): the v2 one (ID 0, no controllers) and the v1 one whose
// controllers include "cpu".
struct CgroupPaths {
  std::optional<std::string> v2;
  std::optional<std::string> v1_cpu;
};

inline CgroupPaths parse_proc_cgroup(std::string_view contents) {
  CgroupPaths paths;
  while (!contents.empty()) {
    const std::string_view line = text::next_line(contents);
    const auto c1 = line.find(':');
    if (c1 == std::string_view::npos) continue;
    const auto c2 = line.find(':', c1 + 1);
    if (c2 == std::string_view::npos) continue;
    const std::string_view id = line.substr(0, c1);
    const std::string_view controllers = line.substr(c1 + 1, c2 - c1 - 1);
    const std::string_view path = line.substr(c2 + 1);
    if (id == "0" && controllers.empty())
      paths.v2 = std::string(path);
    else if (text::has_item(controllers, "cpu"))
      paths.v1_cpu = std::string(path);
  }
  return paths;
}

// A cgroup file system's mount, from /proc/self/mountinfo: the directory of
// the hierarchy at its root ((4) root) and where it is mounted ((5)).
struct Mount {
  std::string root;
  std::string point;
};

// The mount of the v2 hierarchy ("cgroup2"), or of the v1 hierarchy with the
// cpu controller ("cgroup", super options including "cpu"). Among several,
// the one whose root holds `cgroup_path` (the deepest such root), else the
// first.
inline std::optional<Mount> find_cgroup_mount(std::string_view mountinfo, bool v2,
                                              std::string_view cgroup_path) {
  std::optional<Mount> first, best;
  while (!mountinfo.empty()) {
    std::string_view line = text::next_line(mountinfo);
    const auto sep = line.find(" - ");
    if (sep == std::string_view::npos) continue;
    std::string_view tail = line.substr(sep + 3);
    const std::string_view fstype = text::next_field(tail);
    (void)text::next_field(tail);  // source
    const std::string_view super_options = text::next_field(tail);
    const bool match = v2 ? fstype == "cgroup2" : fstype == "cgroup" && text::has_item(super_options, "cpu");
    if (!match) continue;
    std::string_view head = line.substr(0, sep);
    for (int i = 0; i < 3; ++i) (void)text::next_field(head);  // mount ID, parent ID, major:minor
    Mount m{text::unescape(text::next_field(head)), text::unescape(text::next_field(head))};
    if (m.root.empty() || m.point.empty()) continue;
    const std::string_view root = m.root == "/" ? std::string_view{} : std::string_view(m.root);
    const bool holds = cgroup_path.substr(0, root.size()) == root &&
                       (cgroup_path.size() == root.size() || cgroup_path[root.size()] == '/');
    if (holds && (!best || m.root.size() > best->root.size())) best = m;
    if (!first) first = std::move(m);
  }
  return best ? best : first;
}

// The CPUs the cgroup quotas allow the process, 0 for no limit: the tightest
// quota on the way from the process's cgroup up to its hierarchy's root (a
// parent's quota bounds everything under it), in the v2 hierarchy and in v1's
// cpu hierarchy. `read(path)` returns a file's contents, or nothing.
template <class Read>
std::size_t quota_cpus(Read&& read) {
  const auto proc_cgroup = read(std::string("/proc/self/cgroup"));
  if (!proc_cgroup) return 0;
  const CgroupPaths paths = parse_proc_cgroup(*proc_cgroup);
  if (!paths.v2 && !paths.v1_cpu) return 0;
  const auto mountinfo = read(std::string("/proc/self/mountinfo"));
  if (!mountinfo) return 0;

  // Calls at(dir) for the process's cgroup directory and each one above it,
  // up to the mount point; the tightest limit found.
  const auto walk = [&](const std::string& path, bool v2, auto&& at) -> std::size_t {
    const auto mount = find_cgroup_mount(*mountinfo, v2, path);
    if (!mount) return 0;
    // The cgroup's path below the mount's root; empty when the mount does not
    // hold it (then only the mount point's own files are read).
    std::string rel;
    const std::string_view root = mount->root == "/" ? std::string_view{} : std::string_view(mount->root);
    if (path.size() > root.size() && path.compare(0, root.size(), root) == 0 && path[root.size()] == '/' &&
        path.find("/..") == std::string::npos)
      rel = path.substr(root.size());
    std::string base = mount->point;
    while (base.size() > 1 && base.back() == '/') base.pop_back();
    while (rel.size() > 1 && rel.back() == '/') rel.pop_back();
    if (rel == "/") rel.clear();
    std::size_t limit = 0;
    for (;;) {
      limit = tighter(limit, at(base + rel));
      if (rel.empty()) break;
      rel.resize(rel.rfind('/'));
    }
    return limit;
  };

  std::size_t limit = 0;
  if (paths.v2) {
    limit = tighter(limit, walk(*paths.v2, true, [&](const std::string& dir) -> std::size_t {
      const auto max = read(dir + "/cpu.max");
      return max ? cpus_from_cpu_max(*max) : 0;
    }));
  }
  if (paths.v1_cpu) {
    limit = tighter(limit, walk(*paths.v1_cpu, false, [&](const std::string& dir) -> std::size_t {
      const auto quota = read(dir + "/cpu.cfs_quota_us");
      if (!quota) return 0;
      const auto period = read(dir + "/cpu.cfs_period_us");
      return period ? cpus_from_cfs(*quota, *period) : 0;
    }));
  }
  return limit;
}

}  // namespace blockpool::detail::cpu_limit
