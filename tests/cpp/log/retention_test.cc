// The deletion decision of wal.retention: which of the oldest segments go,
// given where the cursors are, the time, and the segments' sizes.
#include "log/retention.h"

#include <catch2/catch.hpp>

namespace forkd::log {
namespace {

constexpr int64_t kHour = 3600ll * 1000000;
constexpr int64_t kNow = 1000 * kHour;

// Four sealed segments of 100 bytes (lsns 1-10, 11-20, 21-30, 31-40) written
// 4, 3, 2 and 1 hours ago, and the active one (41-).
std::vector<SegmentSpan> Segments() {
  return {{1, 100, true, kNow - 4 * kHour},
          {11, 100, true, kNow - 3 * kHour},
          {21, 100, true, kNow - 2 * kHour},
          {31, 100, true, kNow - 1 * kHour},
          {41, 50, false, kNow}};
}

RetentionPolicy Policy(int64_t max_age_us, uint64_t max_bytes) {
  RetentionPolicy p;
  p.max_age_us = max_age_us;
  p.max_bytes = max_bytes;
  return p;
}

TEST_CASE("retention: max_age 0 deletes every segment all cursors have passed", "[retention]") {
  const auto segs = Segments();
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(0, 1ull << 30)) == 4);
  CHECK(SegmentsToDelete(segs, 31, kNow, Policy(0, 1ull << 30)) == 3);
  // A cursor inside a segment needs all of it.
  CHECK(SegmentsToDelete(segs, 30, kNow, Policy(0, 1ull << 30)) == 2);
  CHECK(SegmentsToDelete(segs, 1, kNow, Policy(0, 1ull << 30)) == 0);
  // Past the end too: the active segment is never deleted.
  CHECK(SegmentsToDelete(segs, 1000, kNow, Policy(0, 1ull << 30)) == 4);
}

TEST_CASE("retention: passed segments stay until their newest entry is max_age old",
          "[retention]") {
  const auto segs = Segments();
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(24 * kHour, 1ull << 30)) == 0);
  // Written 4 and 3 hours ago: past 150 minutes; the 2-hour one is not.
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(150 * 60 * 1000000ll, 1ull << 30)) == 2);
  // Exactly max_age old goes.
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(3 * kHour, 1ull << 30)) == 2);
  // Time passing lets the rest go.
  CHECK(SegmentsToDelete(segs, 41, kNow + 2 * kHour, Policy(3 * kHour, 1ull << 30)) == 4);
}

TEST_CASE("retention: past max_bytes the oldest passed segments go first, whatever their age",
          "[retention]") {
  const auto segs = Segments();
  // 400 passed bytes; keep at most 250: the two oldest go.
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(24 * kHour, 250)) == 2);
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(24 * kHour, 400)) == 0);
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(24 * kHour, 399)) == 1);
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(24 * kHour, 0)) == 4);
  // The active segment and the ones cursors need do not count: only the two
  // passed ones (200 bytes) are weighed against the limit.
  CHECK(SegmentsToDelete(segs, 21, kNow, Policy(24 * kHour, 200)) == 0);
  CHECK(SegmentsToDelete(segs, 21, kNow, Policy(24 * kHour, 150)) == 1);
  // Age and size together: the oldest is old enough, then size takes one more.
  CHECK(SegmentsToDelete(segs, 41, kNow, Policy(4 * kHour, 250)) == 2);
}

TEST_CASE("retention: a segment some cursor still needs is never deleted", "[retention]") {
  const auto segs = Segments();
  for (const auto& policy : {Policy(0, 0), Policy(1, 0), Policy(24 * kHour, 0)}) {
    CHECK(SegmentsToDelete(segs, 11, kNow + 100 * kHour, policy) == 1);
    CHECK(SegmentsToDelete(segs, 5, kNow + 100 * kHour, policy) == 0);
  }
}

TEST_CASE("retention: deletion stays a prefix of the log", "[retention]") {
  // An older segment with a newer write time (a clock step) holds back the
  // ones after it until it expires or size pushes it out.
  std::vector<SegmentSpan> segs = {{1, 100, true, kNow},
                                   {11, 100, true, kNow - 5 * kHour},
                                   {21, 10, false, kNow}};
  CHECK(SegmentsToDelete(segs, 21, kNow, Policy(kHour, 1ull << 30)) == 0);
  CHECK(SegmentsToDelete(segs, 21, kNow, Policy(kHour, 100)) == 2);
  // An unsealed segment is never deleted, nor anything after it.
  segs = {{1, 100, false, 0}, {11, 10, false, 0}};
  CHECK(SegmentsToDelete(segs, 100, kNow, Policy(0, 0)) == 0);
  CHECK(SegmentsToDelete({}, 100, kNow, Policy(0, 0)) == 0);
}

}  // namespace
}  // namespace forkd::log
