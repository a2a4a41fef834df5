// Unit test of src/cpu_limit.hpp: the CPU count usable_cpus() gives the
// growth policy, from the affinity mask and the cgroup CPU quota, fed with
// file contents (no real cgroup needed).
#include "cpu_limit.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>
#include <string>

using namespace blockpool::detail::cpu_limit;

namespace {

// The cpu.max file of v2 cgroup `cgroup` ("/" or "/a/b").
std::string v2_cpu_max(const std::string& cgroup) {
  return "/sys/fs/cgroup" + (cgroup == "/" ? std::string() : cgroup) + "/cpu.max";
}

// A fake file system for quota_cpus(): path -> contents.
struct FakeFiles {
  std::map<std::string, std::string> files;
  std::optional<std::string> operator()(const std::string& path) const {
    const auto it = files.find(path);
    if (it == files.end()) return std::nullopt;
    return it->second;
  }
};

constexpr const char* kV2Mount =
    "22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw\n"
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 "
    "rw,nsdelegate,memory_recursiveprot\n";

// A cgroup v2 host (cgroup2 mounted at /sys/fs/cgroup) with the process in
// cgroup `cgroup`, and each given cgroup's cpu.max: {cgroup, contents}.
FakeFiles v2_host(const std::string& cgroup, const std::map<std::string, std::string>& cpu_max = {}) {
  FakeFiles fs;
  fs.files["/proc/self/cgroup"] = "0::" + cgroup + "\n";
  fs.files["/proc/self/mountinfo"] = kV2Mount;
  for (const auto& [cg, contents] : cpu_max) fs.files[v2_cpu_max(cg)] = contents;
  return fs;
}

}  // namespace

TEST(CpuLimit, QuotaRoundsUpAndNeverBelowOne) {
  EXPECT_EQ(cpus_for_quota(200000, 100000), 2u);
  EXPECT_EQ(cpus_for_quota(150000, 100000), 2u);  // 1.5 CPUs keep 2 threads running
  EXPECT_EQ(cpus_for_quota(100001, 100000), 2u);
  EXPECT_EQ(cpus_for_quota(100000, 100000), 1u);
  EXPECT_EQ(cpus_for_quota(10000, 100000), 1u);  // 0.1 CPU is still 1
  EXPECT_EQ(cpus_for_quota(1, 100000), 1u);
  EXPECT_EQ(cpus_for_quota(-1, 100000), 0u);  // no limit
  EXPECT_EQ(cpus_for_quota(0, 100000), 0u);
  EXPECT_EQ(cpus_for_quota(100000, 0), 0u);
}

TEST(CpuLimit, CpuMaxV2) {
  EXPECT_EQ(cpus_from_cpu_max("max 100000\n"), 0u);
  EXPECT_EQ(cpus_from_cpu_max("200000 100000\n"), 2u);
  EXPECT_EQ(cpus_from_cpu_max("150000 100000"), 2u);
  EXPECT_EQ(cpus_from_cpu_max("50000 100000\n"), 1u);
  EXPECT_EQ(cpus_from_cpu_max("6400000 100000\n"), 64u);
  EXPECT_EQ(cpus_from_cpu_max("300000 1000000\n"), 1u);  // 0.3 CPU, period 1 s
  // Not "$MAX $PERIOD": no limit rather than a guess.
  EXPECT_EQ(cpus_from_cpu_max(""), 0u);
  EXPECT_EQ(cpus_from_cpu_max("max"), 0u);
  EXPECT_EQ(cpus_from_cpu_max("200000"), 0u);
  EXPECT_EQ(cpus_from_cpu_max("2x0000 100000"), 0u);
  EXPECT_EQ(cpus_from_cpu_max("200000 100000 7"), 0u);
}

TEST(CpuLimit, CfsV1) {
  EXPECT_EQ(cpus_from_cfs("-1\n", "100000\n"), 0u);
  EXPECT_EQ(cpus_from_cfs("150000\n", "100000\n"), 2u);
  EXPECT_EQ(cpus_from_cfs("250000\n", "100000\n"), 3u);
  EXPECT_EQ(cpus_from_cfs("50000\n", "100000\n"), 1u);
  EXPECT_EQ(cpus_from_cfs("", "100000\n"), 0u);
  EXPECT_EQ(cpus_from_cfs("50000\n", "oops"), 0u);
}

TEST(CpuLimit, UsableIsTheTighterOfAffinityAndQuota) {
  EXPECT_EQ(usable(64, 2), 2u);  // a 2-CPU container on a 64-core host
  EXPECT_EQ(usable(2, 64), 2u);  // taskset tighter than the quota
  EXPECT_EQ(usable(2, 0), 2u);   // no quota
  EXPECT_EQ(usable(1, 4), 1u);
  EXPECT_EQ(usable(0, 3), 3u);   // affinity unknown
  EXPECT_EQ(usable(0, 0), 1u);   // never below 1
}

TEST(CpuLimit, ProcSelfCgroup) {
  const CgroupPaths v2 = parse_proc_cgroup("0::/user.slice/user-1000.slice/session-2.scope\n");
  ASSERT_TRUE(v2.v2);
  EXPECT_EQ(*v2.v2, "/user.slice/user-1000.slice/session-2.scope");
  EXPECT_FALSE(v2.v1_cpu);

  // Hybrid: v1 controllers, and an empty v2 hierarchy beside them.
  const CgroupPaths hybrid = parse_proc_cgroup(
      "9:name=systemd:/\n4:memory:/a/b\n2:cpuacct:/\n1:cpu:/docker/c0ffee\n0::/\n");
  ASSERT_TRUE(hybrid.v1_cpu);
  EXPECT_EQ(*hybrid.v1_cpu, "/docker/c0ffee");
  ASSERT_TRUE(hybrid.v2);
  EXPECT_EQ(*hybrid.v2, "/");

  const CgroupPaths joint = parse_proc_cgroup("5:cpuacct,cpu:/kubepods/pod1\n3:cpuset:/\n");
  ASSERT_TRUE(joint.v1_cpu);
  EXPECT_EQ(*joint.v1_cpu, "/kubepods/pod1");
  EXPECT_FALSE(joint.v2);

  EXPECT_FALSE(parse_proc_cgroup("").v2);
  EXPECT_FALSE(parse_proc_cgroup("garbage\n").v1_cpu);
}

TEST(CpuLimit, FindsTheCgroupMount) {
  const auto v2 = find_cgroup_mount(kV2Mount, true, "/");
  ASSERT_TRUE(v2);
  EXPECT_EQ(v2->root, "/");
  EXPECT_EQ(v2->point, "/sys/fs/cgroup");
  EXPECT_FALSE(find_cgroup_mount(kV2Mount, false, "/"));

  const char* v1 =
      "31 30 0:28 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct\n"
      "32 30 0:29 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset\n";
  const auto cpu = find_cgroup_mount(v1, false, "/");
  ASSERT_TRUE(cpu);
  EXPECT_EQ(cpu->point, "/sys/fs/cgroup/cpu,cpuacct");

  // A mount point with a space (escaped as \040), and optional fields.
  const auto spaced = find_cgroup_mount(
      "40 30 0:37 /x /my\\040cgroup rw shared:9 master:2 - cgroup2 cgroup2 rw\n", true, "/x/y");
  ASSERT_TRUE(spaced);
  EXPECT_EQ(spaced->root, "/x");
  EXPECT_EQ(spaced->point, "/my cgroup");

  // Of two mounts, the one whose root holds the cgroup.
  const auto two = find_cgroup_mount(
      "40 30 0:37 /other /mnt/a rw - cgroup2 cgroup2 rw\n"
      "41 30 0:37 /docker/c0ffee /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
      true, "/docker/c0ffee");
  ASSERT_TRUE(two);
  EXPECT_EQ(two->point, "/sys/fs/cgroup");
}

TEST(CpuLimit, ContainerWithItsOwnCgroupNamespaceV2) {
  const FakeFiles fs = v2_host("/", {{"/", "200000 100000\n"}});
  EXPECT_EQ(quota_cpus(fs), 2u);
  EXPECT_EQ(usable(64, quota_cpus(fs)), 2u);
}

TEST(CpuLimit, AParentQuotaBoundsTheCgroupsBelowIt) {
  FakeFiles fs = v2_host("/a/b/c", {{"/a/b/c", "max 100000\n"},
                                     {"/a/b", "400000 100000\n"},
                                     {"/a", "150000 100000\n"}});
  EXPECT_EQ(quota_cpus(fs), 2u);
  fs.files[v2_cpu_max("/a/b/c")] = "50000 100000\n";
  EXPECT_EQ(quota_cpus(fs), 1u);
}

TEST(CpuLimit, NoQuotaAnywhereIsNoLimit) {
  FakeFiles fs;
  EXPECT_EQ(quota_cpus(fs), 0u);  // no /proc/self/cgroup
  fs.files["/proc/self/cgroup"] = "0::/a\n";
  EXPECT_EQ(quota_cpus(fs), 0u);  // no mountinfo
  fs.files["/proc/self/mountinfo"] = kV2Mount;
  EXPECT_EQ(quota_cpus(fs), 0u);  // no cpu.max (cpu controller not enabled)
  fs.files[v2_cpu_max("/a")] = "max 100000\n";
  EXPECT_EQ(quota_cpus(fs), 0u);
  EXPECT_EQ(usable(2, quota_cpus(fs)), 2u);
}

TEST(CpuLimit, V1WithoutCgroupNamespace) {
  // Docker on cgroup v1: the container sees its own cgroup as the mount's root.
  FakeFiles fs;
  fs.files["/proc/self/cgroup"] = "4:cpu,cpuacct:/docker/c0ffee\n1:name=systemd:/docker/c0ffee\n";
  fs.files["/proc/self/mountinfo"] =
      "31 30 0:28 /docker/c0ffee /sys/fs/cgroup/cpu,cpuacct ro,nosuid - cgroup cgroup "
      "rw,cpu,cpuacct\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"] = "250000\n";
  fs.files["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_period_us"] = "100000\n";
  EXPECT_EQ(quota_cpus(fs), 3u);
  fs.files["/sys/fs/cgroup/cpu,cpuacct/cpu.cfs_quota_us"] = "-1\n";
  EXPECT_EQ(quota_cpus(fs), 0u);
}

TEST(CpuLimit, HybridTakesTheTighterHierarchy) {
  FakeFiles fs;
  fs.files["/proc/self/cgroup"] = "1:cpu:/job\n0::/job\n";
  fs.files["/proc/self/mountinfo"] =
      "31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n"
      "40 30 0:37 / /sys/fs/cgroup/unified rw - cgroup2 cgroup2 rw\n";
  fs.files["/sys/fs/cgroup/cpu/job/cpu.cfs_quota_us"] = "300000\n";
  fs.files["/sys/fs/cgroup/cpu/job/cpu.cfs_period_us"] = "100000\n";
  fs.files["/sys/fs/cgroup/cpu/cpu.cfs_quota_us"] = "-1\n";
  fs.files["/sys/fs/cgroup/cpu/cpu.cfs_period_us"] = "100000\n";
  EXPECT_EQ(quota_cpus(fs), 3u);
  fs.files["/sys/fs/cgroup/unified/job/cpu.max"] = "200000 100000\n";
  EXPECT_EQ(quota_cpus(fs), 2u);
}
