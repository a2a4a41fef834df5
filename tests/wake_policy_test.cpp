// Unit test of the wake-up policy in src/wake_policy.hpp: each decision on
// its own, with the time passed in (no clock, no threads). Where the mutation
// a check catches is not obvious, a comment names it.
#include "wake_policy.hpp"

#include <gtest/gtest.h>

#include <initializer_list>
#include <vector>

using blockpool::detail::WakePolicy;
using std::chrono::microseconds;
using std::chrono::nanoseconds;
using Wake = WakePolicy::Wake;
using time_point = WakePolicy::time_point;

namespace {
const time_point t0{std::chrono::seconds(100)};
constexpr int kCpu = 1;
constexpr int kOtherCpu = 0;
constexpr std::size_t kCpus = 2;  // the process may use two CPUs

// A value a decision reads through a callable, and how often it read it.
template <class T>
struct Source {
  T value;
  int reads = 0;
  auto fn() {
    return [this] {
      ++reads;
      return value;
    };
  }
};
// The clock (at t0 unless moved) and whether work is queued (yes unless told).
struct Clock : Source<time_point> {
  Clock() : Source<time_point>{t0} {}
};
struct Work : Source<bool> {
  explicit Work(bool queued = true) : Source<bool>{queued} {}
};

WakePolicy::Decision spawn(WakePolicy& p, bool idle, Clock& clock, int cpu = kCpu) {
  Work work;
  return p.on_spawn(cpu, idle, work.fn(), clock.fn());
}

WakePolicy::Decision baton(const WakePolicy& p, bool idle, Clock& clock, bool work_queued = true) {
  Work work{work_queued};
  return p.pass_baton(idle, work.fn(), clock.fn());
}

WakePolicy::IdleSpells spells_of(nanoseconds gap, unsigned times) {
  WakePolicy::IdleSpells s;
  for (unsigned i = 0; i < times; ++i) s.note(gap);
  return s;
}
}  // namespace

// ---- on a spawn ----

TEST(WakePolicy, WithNothingOnItsWayASpawnOrABatonWakesAnIdleWorkerStampedNow) {
  WakePolicy p(kCpus);
  Clock clock;
  for (const WakePolicy::Decision d : {spawn(p, true, clock), baton(p, true, clock)}) {
    EXPECT_EQ(d.wake, Wake::kWakeIdle);
    EXPECT_EQ(d.now, t0);
  }
  EXPECT_EQ(clock.reads, 2);
}

TEST(WakePolicy, SpawnWithNobodyIdleAndNothingOnItsWayAsksGrowthWithoutReadingTheClock) {
  WakePolicy p(kCpus);
  Clock clock;
  EXPECT_EQ(spawn(p, false, clock).wake, Wake::kAskGrowth);
  EXPECT_EQ(clock.reads, 0);
}

TEST(WakePolicy, SpawnWhoseWorkIsAlreadyGoneWakesNobody) {
  // An abort may take the task between its push and the decision.
  WakePolicy p(kCpus);
  Clock clock;
  Work work{false};
  EXPECT_EQ(p.on_spawn(kCpu, true, work.fn(), clock.fn()).wake, Wake::kNone);
  EXPECT_EQ(work.reads, 1);
  EXPECT_EQ(clock.reads, 0);
}

TEST(WakePolicy, SpawnTrustsAWokenWorkerOnItsWay) {
  WakePolicy p(kCpus);
  p.on_wake_sent(t0);
  ASSERT_TRUE(p.on_its_way());
  Clock clock;
  clock.value = t0 + WakePolicy::kHandOffTrust;  // the last instant of the trust (catches > turned into >=)
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kNone);
  // Nobody idle: neither a wake-up nor growth, and no clock read (the
  // worker on its way takes the task).
  Clock unread;
  EXPECT_EQ(spawn(p, false, unread).wake, Wake::kNone);
  EXPECT_EQ(unread.reads, 0);
}

TEST(WakePolicy, SpawnTrustsAPollingWorker) {
  WakePolicy p(kCpus);
  p.begin_poll(t0);
  Clock clock;
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kNone);
  p.end_poll();
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kWakeIdle);  // the poller parked or took work
}

TEST(WakePolicy, OverdueHandOffMakesTheSpawnWakeAnother) {
  WakePolicy p(kCpus);
  p.on_wake_sent(t0);
  Clock clock;
  clock.value = t0 + WakePolicy::kHandOffTrust + nanoseconds(1);
  const WakePolicy::Decision d = spawn(p, true, clock);
  EXPECT_EQ(d.wake, Wake::kWakeIdle);
  EXPECT_EQ(d.now, clock.value);
  // The new wake-up is a fresh hand-off: trusted again.
  p.on_wake_sent(d.now);
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kNone);
}

TEST(WakePolicy, OverduePollerMakesTheSpawnWakeAnother) {
  // Catches begin_poll not stamping the hand-off (the epoch stamp would
  // then make the poller overdue at once: see the first check).
  WakePolicy p(kCpus);
  p.begin_poll(t0);
  Clock clock;
  clock.value = t0 + WakePolicy::kHandOffTrust;
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kNone);
  clock.value += nanoseconds(1);
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kWakeIdle);
}

TEST(WakePolicy, HandOffOverdueOnlyPastTheTrustPeriod) {
  EXPECT_FALSE(WakePolicy::hand_off_overdue(t0, t0));
  EXPECT_FALSE(WakePolicy::hand_off_overdue(t0, t0 + WakePolicy::kHandOffTrust));
  EXPECT_TRUE(WakePolicy::hand_off_overdue(t0, t0 + WakePolicy::kHandOffTrust + nanoseconds(1)));
  EXPECT_TRUE(WakePolicy::hand_off_overdue(time_point{}, t0));  // a stamp reset by on_woken
}

// ---- when a woken worker arrives ----

TEST(WakePolicy, WokenWorkerIsNoLongerOnItsWay) {
  WakePolicy p(kCpus);
  p.on_wake_sent(t0);
  p.on_woken();
  EXPECT_FALSE(p.on_its_way());
  // No trust when nothing is on its way: the spawn wakes an idle worker
  // even though the latest hand-off is recent.
  Clock clock;
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kWakeIdle);
}

TEST(WakePolicy, WokenWorkerEndsTheTrustInOlderHandOffsStillInFlight) {
  // Two wake-ups in flight (the second because the first was overdue); the
  // second worker arrives: the first is still out, and is not trusted any
  // more. Catches on_woken not resetting the stamp.
  WakePolicy p(kCpus);
  p.on_wake_sent(t0);
  const time_point t1 = t0 + WakePolicy::kHandOffTrust + nanoseconds(1);
  p.on_wake_sent(t1);
  p.on_woken();
  ASSERT_TRUE(p.on_its_way());
  Clock clock;
  clock.value = t1;  // not overdue by the second hand-off's stamp
  EXPECT_EQ(spawn(p, true, clock).wake, Wake::kWakeIdle);
}

TEST(WakePolicy, ShutdownWakeUpsAreOnTheirWayUntilWoken) {
  WakePolicy p(kCpus);
  p.on_shutdown_wake_sent();
  p.on_shutdown_wake_sent();
  EXPECT_TRUE(p.on_its_way());
  p.on_woken();
  EXPECT_TRUE(p.on_its_way());
  p.on_woken();
  EXPECT_FALSE(p.on_its_way());
}

// ---- after a pop, with more work queued ----

TEST(WakePolicy, BatonWithAWorkerOnItsWay) {
  WakePolicy p(kCpus);
  p.on_wake_sent(time_point{});  // overdue by any clock
  Clock clock;
  // An idle worker is not woken, even for an overdue hand-off: one wake-up
  // in flight; only a spawn second-guesses an overdue hand-off.
  EXPECT_EQ(baton(p, true, clock).wake, Wake::kNone);
  // Nobody idle: the growth policy decides all the same. The worker on its
  // way takes one task; the queue behind it may still need threads.
  EXPECT_EQ(baton(p, false, clock).wake, Wake::kAskGrowth);
  EXPECT_EQ(clock.reads, 0);
}

TEST(WakePolicy, BatonWakesNobodyWhenTheWorkIsGone) {
  WakePolicy p(kCpus);
  Clock clock;
  EXPECT_EQ(baton(p, true, clock, false).wake, Wake::kNone);
  EXPECT_EQ(clock.reads, 0);
}

// ---- before parking ----

TEST(WakePolicy, PollsOnlyAfterAShortIdleSpell) {
  WakePolicy p(kCpus);
  EXPECT_FALSE(p.poll_before_parking(WakePolicy::IdleSpells{}, kCpu));  // a worker's first idle spell
  EXPECT_TRUE(p.poll_before_parking(spells_of(microseconds(5), 1), kCpu));
  EXPECT_FALSE(p.poll_before_parking(spells_of(WakePolicy::kSpinWindow, 1), kCpu));
  EXPECT_TRUE(p.poll_before_parking(spells_of(WakePolicy::kSpinWindow - nanoseconds(1), 1), kCpu));
}

TEST(WakePolicy, AtMostOneWorkerPolls) {
  WakePolicy p(kCpus);
  const auto spells = spells_of(microseconds(5), WakePolicy::kStreamGaps);
  p.begin_poll(t0);
  EXPECT_FALSE(p.poll_before_parking(spells, kCpu));
  p.end_poll();
  EXPECT_TRUE(p.poll_before_parking(spells, kCpu));
}

TEST(WakePolicy, OnTheSpawnersCpuPollsOnlyWithinAStream) {
  WakePolicy p(kCpus);
  Clock clock;
  (void)spawn(p, false, clock, kCpu);  // the latest spawn came from kCpu
  const nanoseconds gap = microseconds(5);
  EXPECT_FALSE(p.poll_before_parking(spells_of(gap, 1), kCpu));
  EXPECT_FALSE(p.poll_before_parking(spells_of(gap, WakePolicy::kStreamGaps - 1), kCpu));
  EXPECT_TRUE(p.poll_before_parking(spells_of(gap, WakePolicy::kStreamGaps), kCpu));
  // On another CPU, no stream is needed.
  EXPECT_TRUE(p.poll_before_parking(spells_of(gap, 1), kOtherCpu));
}

TEST(WakePolicy, NeverPollsInAProcessThatMayUseOneCpu) {
  WakePolicy one(1);
  WakePolicy::IdleSpells spells;
  for (unsigned i = 0; i < WakePolicy::kStreamGaps; ++i) spells.note(nanoseconds(1));
  EXPECT_FALSE(one.poll_before_parking(spells, kOtherCpu));
  EXPECT_FALSE(one.poll_before_parking(spells, -1));
  WakePolicy two(kCpus);  // the same spells poll with a second CPU
  EXPECT_TRUE(two.poll_before_parking(spells, kOtherCpu));
}

TEST(WakePolicy, AnUnknownCpuIsNeverTheSpawners) {
  // Catches dropping the `cpu >= 0` test: both CPUs unknown (-1) would
  // match, and the worker would park on every short spell.
  WakePolicy p(kCpus);
  Clock clock;
  (void)spawn(p, false, clock, -1);
  EXPECT_TRUE(p.poll_before_parking(spells_of(microseconds(5), 1), -1));
}

TEST(WakePolicy, IdleSpellsCountShortSpellsInARowUpToTheStream) {
  WakePolicy::IdleSpells s;
  EXPECT_EQ(s.last_gap(), nanoseconds::max());
  EXPECT_EQ(s.short_in_a_row(), 0u);
  for (unsigned i = 1; i <= WakePolicy::kStreamGaps + 3; ++i) {
    s.note(microseconds(1));
    EXPECT_EQ(s.short_in_a_row(), std::min(i, WakePolicy::kStreamGaps));
  }
  s.note(WakePolicy::kSpinWindow);  // a spell of the window itself is not short
  EXPECT_EQ(s.short_in_a_row(), 0u);
  EXPECT_EQ(s.last_gap(), WakePolicy::kSpinWindow);
}

TEST(WakePolicy, PollEndsAfterTheWindow) {
  EXPECT_FALSE(WakePolicy::poll_over(nanoseconds(0)));
  EXPECT_FALSE(WakePolicy::poll_over(WakePolicy::kSpinWindow));
  EXPECT_TRUE(WakePolicy::poll_over(WakePolicy::kSpinWindow + nanoseconds(1)));
}

// ---- which idle worker a wake-up takes ----

namespace {
// parked_on[i]: the CPU the i-th most recently idle worker parked on.
std::size_t pick(std::initializer_list<int> parked_on, int cpu) {
  const std::vector<int> v(parked_on);
  return WakePolicy::pick_idle(v, cpu);
}
}  // namespace

TEST(WakePolicy, WakeUpTakesTheMostRecentlyIdleThatParkedOnTheWakersCpu) {
  EXPECT_EQ(pick({kOtherCpu, kOtherCpu, kCpu, kCpu}, kCpu), 2u);  // not the later one (index 3)
  EXPECT_EQ(pick({kCpu, kOtherCpu}, kCpu), 0u);
}

TEST(WakePolicy, WakeUpTakesTheMostRecentlyIdleWhenNoneParkedOnTheWakersCpu) {
  // The idle list stays LIFO: not the oldest, not the last looked at.
  EXPECT_EQ(pick({kOtherCpu, kOtherCpu, kOtherCpu}, kCpu), 0u);
  EXPECT_EQ(pick({kOtherCpu}, kCpu), 0u);
  // A worker whose CPU is unknown (-1) matches no waker.
  EXPECT_EQ(pick({kOtherCpu, -1}, -1), 0u);
}

TEST(WakePolicy, WakeUpFromAnUnknownCpuTakesTheMostRecentlyIdle) {
  EXPECT_EQ(pick({kOtherCpu, -1, kCpu}, -1), 0u);
}

TEST(WakePolicy, WakeUpLooksAtMostAtTheScanLimit) {
  // The waker's CPU only beyond kWakeScan: the search is bounded (O(1)
  // under the pool lock however many workers are idle).
  std::vector<int> parked(WakePolicy::kWakeScan, kOtherCpu);
  parked.push_back(kCpu);
  EXPECT_EQ(WakePolicy::pick_idle(parked, kCpu), 0u);
  parked[WakePolicy::kWakeScan - 1] = kCpu;  // the last one looked at
  EXPECT_EQ(WakePolicy::pick_idle(parked, kCpu), WakePolicy::kWakeScan - 1);
}

// ---- the constants' invariants ----

TEST(WakePolicy, ConstantsKeepTheirInvariants) {
  // Trust lasts far longer than a normal wake-up (tens of us on a VM), so a
  // busy pool does not double its wake-ups.
  EXPECT_GE(WakePolicy::kHandOffTrust, microseconds(200));
  // A poller's trust outlasts its own poll: a spawn never wakes another
  // worker while the poller is still polling on time.
  EXPECT_GT(WakePolicy::kHandOffTrust, WakePolicy::kSpinWindow);
  EXPECT_GE(WakePolicy::kStreamGaps, 1u);
  EXPECT_GE(WakePolicy::kWakeScan, 1u);
}
