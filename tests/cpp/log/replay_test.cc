// Where `forkd replay` moves a destination's cursor: the first entry received
// since a time, or the entry with an event id, and how many entries routed to
// it lie between there and what it has delivered; refused when the retained
// log does not reach that far back.
#include "log/replay.h"

#include <poll.h>

#include "test_util.h"
#include "wire/codec.h"

namespace forkd::log {
namespace {

using test::TempDir;

constexpr int64_t kSecond = 1000000;
constexpr int64_t kT0 = 1700000000ll * kSecond;

// A stored event to `dest`, with idempotency key `key` (none when empty).
std::string Event(const std::string& dest, const std::string& key) {
  return test::Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.Str(dest);
    if (key.empty()) {
      w.Nil();
    } else {
      w.Str(key);
    }
    w.Nil();
    w.MapHeader(1);
    w.Str("pad");
    w.Str(std::string(200, 'x'));  // 100 entries: several segments of 4 KiB
  });
}

// lsn i (1..100) received at kT0 + i seconds; even lsns to "a", odd to "b";
// lsn 50 carries the key "order-50".
struct ReplayLog {
  explicit ReplayLog(const TempDir& dir) {
    LogOptions o;
    o.dir = dir.Join("wal");
    o.segment_bytes = 4096;
    RecoveryInfo info;
    REQUIRE(Log::Open(o, &log, &info).ok());
    for (uint64_t i = 1; i <= 100; ++i) {
      const std::string e = Event(i % 2 == 0 ? "a" : "b", i == 50 ? "order-50" : "");
      log->Append(kT0 + static_cast<int64_t>(i) * kSecond, client, i, test::U8(e), e.size());
      uint64_t gen;
      REQUIRE(log->StartCommit(&gen));
      pollfd p{log->completion_fd(), POLLIN, 0};
      REQUIRE(::poll(&p, 1, 10000) == 1);
      CommitResult r, pf;
      REQUIRE(log->TakeCompletion(&r, &pf));
      REQUIRE(r.status.ok());
    }
  }
  ReplayRequest Since(int64_t at_us) {
    ReplayRequest r;
    r.since_us = at_us;
    return r;
  }
  ReplayRequest Id(const std::string& id) {
    ReplayRequest r;
    r.by_time = false;
    r.id = id;
    return r;
  }
  uint8_t client[16] = {0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  std::unique_ptr<Log> log;
};

}  // namespace

TEST_CASE("PlanReplay finds the first entry received since a time", "[replay][log]") {
  TempDir dir;
  ReplayLog t(dir);
  ReplayPlan plan;
  // Received at kT0+60s and after: lsn 60..100; "a" has 60, 62 ... 100 = 21.
  REQUIRE(PlanReplay(t.log.get(), "a", t.Since(kT0 + 60 * kSecond - 1), 101, 101, 101, &plan).ok());
  CHECK(plan.from.next_lsn == 60);
  CHECK(plan.from_recv_us == kT0 + 60 * kSecond);
  CHECK(plan.events == 21);
  CHECK(plan.oldest_lsn == 1);
  CHECK(plan.oldest_recv_us == kT0 + kSecond);
  // Only what it delivered counts: a cursor at 80 re-delivers 60..79.
  REQUIRE(PlanReplay(t.log.get(), "a", t.Since(kT0 + 60 * kSecond), 80, 80, 101, &plan).ok());
  CHECK(plan.events == 10);
  // Delivered past its cursor (a deferred commit): those count too.
  REQUIRE(PlanReplay(t.log.get(), "a", t.Since(kT0 + 60 * kSecond), 80, 90, 101, &plan).ok());
  CHECK(plan.from.next_lsn == 60);
  CHECK(plan.events == 15);
  // Nothing received since: the cursor stays.
  REQUIRE(PlanReplay(t.log.get(), "a", t.Since(kT0 + 500 * kSecond), 101, 101, 101, &plan).ok());
  CHECK(plan.from.next_lsn == 101);
  CHECK(plan.events == 0);
  // Before the oldest entry of a log that lost none: from its start.
  REQUIRE(PlanReplay(t.log.get(), "b", t.Since(kT0 - 3600 * kSecond), 101, 101, 101, &plan).ok());
  CHECK(plan.from.next_lsn == 1);
  CHECK(plan.events == 50);
}

TEST_CASE("PlanReplay finds an entry by its event id or idempotency key", "[replay][log]") {
  TempDir dir;
  ReplayLog t(dir);
  ReplayPlan plan;
  REQUIRE(PlanReplay(t.log.get(), "b", t.Id(wire::FormatEventId(t.client, 71)), 101, 101, 101,
                     &plan)
              .ok());
  CHECK(plan.from.next_lsn == 71);
  CHECK(plan.events == 15);  // 71, 73 ... 99
  REQUIRE(PlanReplay(t.log.get(), "a", t.Id("order-50"), 101, 101, 101, &plan).ok());
  CHECK(plan.from.next_lsn == 50);
  CHECK(plan.events == 26);
  // Past the cursor (not delivered yet): nothing moves.
  REQUIRE(PlanReplay(t.log.get(), "a", t.Id("order-50"), 40, 40, 101, &plan).ok());
  CHECK(plan.from.next_lsn == 40);
  CHECK(plan.events == 0);
  // An id not in the log.
  Status s = PlanReplay(t.log.get(), "a", t.Id("nope"), 101, 101, 101, &plan);
  CHECK(s.IsNotFound());
  CHECK(s.message().find("no event with id nope is in the log: the log goes back to") == 0);
}

TEST_CASE("PlanReplay refuses what the retained log no longer reaches", "[replay][log]") {
  TempDir dir;
  ReplayLog t(dir);
  REQUIRE(t.log->segment_count() > 3);
  REQUIRE(t.log->DeleteSegmentsBefore(60) > 0);
  const uint64_t first = t.log->first_lsn();
  REQUIRE(first > 1);
  ReplayPlan plan;
  Status s = PlanReplay(t.log.get(), "a", t.Since(kT0), 101, 101, 101, &plan);
  CHECK(s.IsNotFound());
  CHECK(s.message().find("(lsn " + std::to_string(first) + ")") != std::string::npos);
  // The id of a deleted entry.
  s = PlanReplay(t.log.get(), "a", t.Id(wire::FormatEventId(t.client, 2)), 101, 101, 101, &plan);
  CHECK(s.IsNotFound());
  // Within what is left: fine.
  REQUIRE(PlanReplay(t.log.get(), "a", t.Since(kT0 + 90 * kSecond), 101, 101, 101, &plan).ok());
  CHECK(plan.from.next_lsn == 90);
}

}  // namespace forkd::log
