// The Log: group commit on the sync thread, recovery on Open, tail readers
// that follow the durable end across segments, segment roll and deletion, and
// what a failed write or sync leaves behind.
#include "log/log.h"

#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cinttypes>
#include <cstdio>
#include <cstring>
#include <thread>

#include "core/fs.h"
#include "test_util.h"

namespace forkd::log {
namespace {

using test::CollectingReporter;
using test::FaultGuard;
using test::TempDir;

const uint8_t kClient[wire::kClientIdSize] = {1, 2,  3,  4,  5,  6,  7,  8,
                                              9, 10, 11, 12, 13, 14, 15, 16};

// An event whose bytes say which lsn and which attempt wrote it, so an entry
// rewritten after a failed commit is told apart from the lost one.
std::string EventFor(uint64_t lsn, const std::string& tag = "", size_t size = 0) {
  std::string s = "event " + std::to_string(lsn) + tag;
  if (s.size() < size) {
    test::Rng rng(lsn);
    s += rng.Bytes(size - s.size());
  }
  return s;
}

std::string SegmentName(uint64_t first_lsn) {
  char name[32];
  std::snprintf(name, sizeof(name), "%020" PRIu64 ".log", first_lsn);
  return name;
}

// The log as a store of bytes: its entries here are arbitrary text, so the
// readers' check of stored events is off (the tests of that check turn it on).
LogOptions Options(const std::string& dir, uint64_t segment_bytes = 64ull << 20) {
  LogOptions o;
  o.dir = dir;
  o.segment_bytes = segment_bytes;
  o.check_events = false;
  return o;
}

std::unique_ptr<Log> OpenLog(const LogOptions& o, RecoveryInfo* info = nullptr) {
  RecoveryInfo ignored;
  std::unique_ptr<Log> log;
  Status s = Log::Open(o, &log, info != nullptr ? info : &ignored);
  INFO(s.ToString());
  REQUIRE(s.ok());
  REQUIRE(log != nullptr);
  return log;
}

uint64_t AppendEvent(Log& log, const std::string& event, uint64_t seq = 0, int64_t recv_us = 0) {
  return log.Append(recv_us, kClient, seq, test::U8(event), event.size());
}

// Waits for the commit in flight to complete and takes it.
CommitResult AwaitCompletion(Log& log, CommitResult* pending_failed = nullptr) {
  pollfd p{log.completion_fd(), POLLIN, 0};
  REQUIRE(::poll(&p, 1, 10000) == 1);
  CommitResult r, pf;
  REQUIRE(log.TakeCompletion(&r, &pf));
  if (pending_failed != nullptr) *pending_failed = pf;
  return r;
}

CommitResult Commit(Log& log) {
  uint64_t gen = 0;
  REQUIRE(log.StartCommit(&gen));
  CommitResult r = AwaitCompletion(log);
  CHECK(r.generation == gen);
  return r;
}

// Appends `n` entries (lsn-tagged events) and commits them as one batch.
void AppendAndCommit(Log& log, size_t n, size_t size = 0, const std::string& tag = "") {
  const uint64_t first = log.durable_next_lsn();
  for (size_t i = 0; i < n; ++i) {
    const uint64_t lsn = first + i;
    REQUIRE(AppendEvent(log, EventFor(lsn, tag, size), lsn * 10, static_cast<int64_t>(lsn)) == lsn);
  }
  CommitResult r = Commit(log);
  INFO(r.status.ToString());
  REQUIRE(r.status.ok());
  REQUIRE(r.first_lsn == first);
  REQUIRE(r.last_lsn == first + n - 1);
  REQUIRE(log.durable_next_lsn() == first + n);
}

struct Got {
  uint64_t lsn;
  int64_t recv_us;
  uint64_t seq;
  std::string client;
  std::string event;
};

// Reads from `from` to the durable end.
std::vector<Got> ReadFrom(Log& log, const Position& from, Reporter* reporter = nullptr,
                          Position* end = nullptr) {
  std::unique_ptr<TailReader> r;
  Status s = log.NewReader(from, reporter, &r);
  INFO(s.ToString());
  REQUIRE(s.ok());
  std::vector<Got> out;
  Entry e;
  Status io;
  while (r->Next(&e, &io) == TailReader::Result::kEntry) {
    out.push_back({e.header.lsn, e.header.recv_us, e.header.seq,
                   std::string(reinterpret_cast<const char*>(e.header.client_id), 16),
                   std::string(reinterpret_cast<const char*>(e.event), e.event_size)});
  }
  INFO(io.ToString());
  REQUIRE(io.ok());
  if (end != nullptr) *end = r->position();
  return out;
}

std::vector<uint64_t> Lsns(const std::vector<Got>& v) {
  std::vector<uint64_t> out;
  for (const auto& g : v) out.push_back(g.lsn);
  return out;
}

std::vector<uint64_t> Range(uint64_t first, uint64_t last) {
  std::vector<uint64_t> out;
  for (uint64_t i = first; i <= last; ++i) out.push_back(i);
  return out;
}

// Checks that `got` holds lsns [first, last] with the events EventFor wrote.
void CheckEntries(const std::vector<Got>& got, uint64_t first, uint64_t last,
                  const std::string& tag = "", size_t size = 0) {
  REQUIRE(Lsns(got) == Range(first, last));
  const std::string client(reinterpret_cast<const char*>(kClient), 16);
  for (const auto& g : got) {
    INFO("lsn " << g.lsn);
    CHECK(g.event == EventFor(g.lsn, tag, size));
    CHECK(g.client == client);
  }
}

uint64_t SumOfFileSizes(const std::string& dir) {
  uint64_t n = 0;
  for (const auto& name : test::ListDir(dir)) n += test::FileSizeOf(dir + "/" + name);
  return n;
}

}  // namespace

TEST_CASE("a new log starts at lsn 1 with one empty segment", "[log]") {
  TempDir dir;
  const std::string wal = dir.Join("a/b/wal");  // parents are created
  RecoveryInfo info;
  auto log = OpenLog(Options(wal), &info);
  CHECK(info.segments == 1);
  CHECK(info.bytes == 0);
  CHECK(info.next_lsn == 1);
  CHECK(info.torn_tail_bytes == 0);
  CHECK(info.corrupt_bytes == 0);
  CHECK(info.damage.empty());
  CHECK(test::ListDir(wal) == std::vector<std::string>{SegmentName(1)});
  CHECK(log->durable_next_lsn() == 1);
  CHECK(log->first_lsn() == 1);
  CHECK(log->segment_count() == 1);
  CHECK(log->total_bytes() == 0);
  uint64_t gen;
  CHECK_FALSE(log->StartCommit(&gen));  // nothing pending
  CHECK_FALSE(log->commit_in_flight());
  CHECK(ReadFrom(*log, Position{}).empty());
}

TEST_CASE("Log::Open fails with a message when the directory cannot be used", "[log]") {
  TempDir dir;
  test::WriteFileOrDie(dir.Join("file"), "x");
  std::unique_ptr<Log> log;
  RecoveryInfo info;
  Status s = Log::Open(Options(dir.Join("file")), &log, &info);
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Contains("not a directory"));
  CHECK(log == nullptr);
}

TEST_CASE("group commit: entries appended during a commit go into the next batch", "[log]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path()));

  for (uint64_t lsn = 1; lsn <= 100; ++lsn) {
    REQUIRE(AppendEvent(*log, EventFor(lsn), lsn * 10, static_cast<int64_t>(lsn)) == lsn);
  }
  CHECK(log->pending_entries() == 100);
  CHECK(log->pending_bytes() > 100 * kEntryHeaderSize);
  uint64_t gen1 = 0, gen2 = 0;
  REQUIRE(log->StartCommit(&gen1));
  CHECK(log->commit_in_flight());
  CHECK(log->pending_entries() == 0);
  CHECK(log->pending_bytes() == 0);
  CHECK_FALSE(log->StartCommit(&gen2));  // one commit at a time

  // The next batch accumulates while the first one syncs.
  for (uint64_t lsn = 101; lsn <= 150; ++lsn) {
    REQUIRE(AppendEvent(*log, EventFor(lsn), lsn * 10, static_cast<int64_t>(lsn)) == lsn);
  }
  CHECK(log->pending_entries() == 50);
  CHECK_FALSE(log->StartCommit(&gen2));

  CommitResult r = AwaitCompletion(*log);
  CHECK(r.status.ok());
  CHECK(r.generation == gen1);
  CHECK(r.first_lsn == 1);
  CHECK(r.last_lsn == 100);
  CHECK(log->durable_next_lsn() == 101);
  CHECK_FALSE(log->commit_in_flight());
  CommitResult none, pf;
  CHECK_FALSE(log->TakeCompletion(&none, &pf));

  REQUIRE(log->StartCommit(&gen2));
  CHECK(gen2 == gen1 + 1);
  r = AwaitCompletion(*log);
  CHECK(r.status.ok());
  CHECK(r.first_lsn == 101);
  CHECK(r.last_lsn == 150);
  CHECK(log->durable_next_lsn() == 151);

  CHECK(log->stats().commits.load() == 2);
  CHECK(log->stats().entries.load() == 150);
  CHECK(log->stats().bytes.load() == test::FileSizeOf(dir.Join(SegmentName(1))));
  CHECK(log->stats().errors.load() == 0);
  CHECK(log->total_bytes() == test::FileSizeOf(dir.Join(SegmentName(1))));

  const auto got = ReadFrom(*log, Position{});
  CheckEntries(got, 1, 150);
  for (const auto& g : got) {
    CHECK(g.seq == g.lsn * 10);
    CHECK(g.recv_us == static_cast<int64_t>(g.lsn));
  }
}

TEST_CASE("entries of every size, including ones spanning blocks, read back whole", "[log]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path()));
  const std::vector<size_t> sizes = {
      0,      1, kBlockSize - kEntryHeaderSize - kHeaderSize, kBlockSize, 3 * kBlockSize + 5, 100,
      200000, 7};
  std::vector<std::string> events;
  for (size_t i = 0; i < sizes.size(); ++i) {
    events.push_back(test::Rng(i + 1).Bytes(sizes[i]));
    REQUIRE(AppendEvent(*log, events.back()) == i + 1);
    if (i % 3 == 2) REQUIRE(Commit(*log).status.ok());
  }
  REQUIRE(Commit(*log).status.ok());
  const auto got = ReadFrom(*log, Position{});
  REQUIRE(got.size() == events.size());
  for (size_t i = 0; i < got.size(); ++i) CHECK(got[i].event == events[i]);
}

TEST_CASE("reopening a log continues its lsns", "[log][recovery]") {
  TempDir dir;
  {
    auto log = OpenLog(Options(dir.path()));
    AppendAndCommit(*log, 10);
    AppendAndCommit(*log, 5);
  }
  RecoveryInfo info;
  auto log = OpenLog(Options(dir.path()), &info);
  CHECK(info.segments == 1);
  CHECK(info.next_lsn == 16);
  CHECK(info.bytes == test::FileSizeOf(dir.Join(SegmentName(1))));
  CHECK(info.torn_tail_bytes == 0);
  CHECK(info.corrupt_bytes == 0);
  CHECK(info.damage.empty());
  CHECK(log->durable_next_lsn() == 16);
  AppendAndCommit(*log, 3);
  CheckEntries(ReadFrom(*log, Position{}), 1, 18);
}

TEST_CASE("recovery cuts a torn tail at every byte of the last entry", "[log][recovery]") {
  TempDir src;
  std::vector<uint64_t> ends;  // segment length after each entry
  {
    auto log = OpenLog(Options(src.path()));
    for (int i = 0; i < 5; ++i) {
      AppendAndCommit(*log, 1);
      ends.push_back(log->total_bytes());
    }
  }
  const std::string pristine = test::ReadFileOrDie(src.Join(SegmentName(1)));
  REQUIRE(pristine.size() == ends.back());
  const uint64_t last_start = ends[3];

  for (uint64_t cut = last_start; cut < pristine.size(); ++cut) {
    INFO("segment cut to " << cut << " bytes");
    TempDir dir;
    test::WriteFileOrDie(dir.Join(SegmentName(1)), pristine.substr(0, cut));
    RecoveryInfo info;
    auto log = OpenLog(Options(dir.path()), &info);
    CHECK(info.torn_tail_bytes == cut - last_start);
    CHECK(info.corrupt_bytes == 0);
    CHECK(info.damage.empty());
    CHECK(info.next_lsn == 5);  // the torn entry's lsn is taken again
    CHECK(info.bytes == last_start);
    CHECK(info.segments == 1);
    CHECK(test::FileSizeOf(dir.Join(SegmentName(1))) == last_start);
    CheckEntries(ReadFrom(*log, Position{}), 1, 4);
    if (cut == last_start || cut == last_start + 1 || cut == pristine.size() - 1) {
      // The log goes on after the cut: the new entry 5 replaces the torn one.
      AppendAndCommit(*log, 1, 0, " again");
      log.reset();
      RecoveryInfo again;
      log = OpenLog(Options(dir.path()), &again);
      CHECK(again.torn_tail_bytes == 0);
      CHECK(again.next_lsn == 6);
      const auto got = ReadFrom(*log, Position{});
      REQUIRE(got.size() == 5);
      CheckEntries(std::vector<Got>(got.begin(), got.begin() + 4), 1, 4);
      CHECK(got[4].lsn == 5);
      CHECK(got[4].event == EventFor(5, " again"));
    }
  }
}

TEST_CASE("recovery cuts a torn entry that spans blocks", "[log][recovery]") {
  TempDir src;
  uint64_t last_start = 0;
  {
    auto log = OpenLog(Options(src.path()));
    AppendAndCommit(*log, 3, 5000);
    last_start = log->total_bytes();
    AppendAndCommit(*log, 1, 2 * kBlockSize + 100);
  }
  const std::string pristine = test::ReadFileOrDie(src.Join(SegmentName(1)));
  std::vector<uint64_t> cuts = {last_start, last_start + 1, last_start + kHeaderSize,
                                pristine.size() - 1};
  for (uint64_t b = kBlockSize; b < pristine.size(); b += kBlockSize) {
    for (uint64_t c = b - 8; c <= b + 8 && c < pristine.size(); ++c) cuts.push_back(c);
  }
  for (uint64_t cut : cuts) {
    INFO("segment cut to " << cut << " bytes");
    TempDir dir;
    test::WriteFileOrDie(dir.Join(SegmentName(1)), pristine.substr(0, cut));
    RecoveryInfo info;
    auto log = OpenLog(Options(dir.path()), &info);
    CHECK(info.torn_tail_bytes == cut - last_start);
    CHECK(info.damage.empty());
    CHECK(info.next_lsn == 4);
    CheckEntries(ReadFrom(*log, Position{}), 1, 3, "", 5000);
  }
}

TEST_CASE("recovery reports damage before the end and keeps what follows it", "[log][recovery]") {
  TempDir dir;
  const std::string seg = dir.Join(SegmentName(1));
  uint64_t damaged_at = 0;
  {
    auto log = OpenLog(Options(dir.path()));
    AppendAndCommit(*log, 2, 1000);
    damaged_at = log->total_bytes();
    AppendAndCommit(*log, 200, 1000);  // about 7 blocks
  }
  REQUIRE(damaged_at < kBlockSize - 3000);
  const uint64_t size = test::FileSizeOf(seg);
  {
    // Flip a byte in entry 3's event.
    std::string bytes = test::ReadFileOrDie(seg);
    bytes[damaged_at + kHeaderSize + kEntryHeaderSize + 10] ^= 0x40;
    test::WriteFileOrDie(seg, bytes);
  }
  RecoveryInfo info;
  auto log = OpenLog(Options(dir.path()), &info);
  CHECK(info.next_lsn == 203);
  CHECK(info.torn_tail_bytes == 0);
  CHECK(test::FileSizeOf(seg) == size);  // damage is not cut off
  CHECK(info.corrupt_bytes >= kBlockSize - damaged_at);
  REQUIRE(info.damage.size() >= 1);
  CHECK_THAT(info.damage[0], Catch::Contains(seg) && Catch::Contains("checksum mismatch") &&
                                 Catch::Contains("at byte " + std::to_string(damaged_at)));

  // A reader skips the rest of the damaged block, says so, and goes on.
  CollectingReporter rep;
  const auto got = ReadFrom(*log, Position{}, &rep);
  REQUIRE_FALSE(rep.drops.empty());
  CHECK(rep.drops[0].offset == damaged_at);
  CHECK(rep.drops[0].reason == "checksum mismatch");
  REQUIRE(got.size() > 100);
  CHECK(got[0].lsn == 1);
  CHECK(got[1].lsn == 2);
  CHECK(got[2].lsn > 3);
  CHECK(got.back().lsn == 202);
  for (const auto& g : got) CHECK(g.event == EventFor(g.lsn, "", 1000));
  // And the log goes on from the end, not from the damage.
  AppendAndCommit(*log, 1);
  CHECK(ReadFrom(*log, Position{202, 0, 0}).size() == 2);
}

TEST_CASE("recovery cuts garbage and zeros after the last entry as a torn tail",
          "[log][recovery]") {
  TempDir dir;
  const std::string seg = dir.Join(SegmentName(1));
  {
    auto log = OpenLog(Options(dir.path()));
    AppendAndCommit(*log, 4, 100);
  }
  const std::string clean = test::ReadFileOrDie(seg);
  SECTION("garbage") {
    test::WriteFileOrDie(seg, clean + std::string(100, '\xab'));
    RecoveryInfo info;
    auto log = OpenLog(Options(dir.path()), &info);
    CHECK(info.torn_tail_bytes == 100);
    CHECK(info.corrupt_bytes == 0);
    CHECK(info.damage.empty());
    CHECK(info.next_lsn == 5);
    CHECK(test::ReadFileOrDie(seg) == clean);
  }
  SECTION("zeros, as a crash can leave in a preallocated tail") {
    test::WriteFileOrDie(seg, clean + std::string(kBlockSize + 5000, '\0'));
    RecoveryInfo info;
    auto log = OpenLog(Options(dir.path()), &info);
    CHECK(info.torn_tail_bytes == kBlockSize + 5000);
    CHECK(info.damage.empty());
    CHECK(info.next_lsn == 5);
    CHECK(test::ReadFileOrDie(seg) == clean);
    AppendAndCommit(*log, 1, 100);
    CheckEntries(ReadFrom(*log, Position{}), 1, 5, "", 100);
  }
  SECTION("a last segment with no whole entry") {
    // A crash right after a roll: the new segment holds only a torn header.
    {
      auto log = OpenLog(Options(dir.path(), 1));  // roll after every batch
      AppendAndCommit(*log, 1, 100);               // lsn 5 still goes to segment 1,
      AppendAndCommit(*log, 1, 100);               // lsn 6 starts segment 6
    }
    REQUIRE(test::FileExists(dir.Join(SegmentName(6))));
    test::WriteFileOrDie(dir.Join(SegmentName(6)), std::string("\x01\x02\x03", 3));
    RecoveryInfo info;
    auto log = OpenLog(Options(dir.path()), &info);
    CHECK(info.segments == 2);
    CHECK(info.torn_tail_bytes == 3);
    CHECK(info.next_lsn == 6);  // the empty segment's name says where the log goes on
    CHECK(test::FileSizeOf(dir.Join(SegmentName(6))) == 0);
    AppendAndCommit(*log, 1, 100);
    CheckEntries(ReadFrom(*log, Position{}), 1, 6, "", 100);
  }
}

TEST_CASE("segments roll past segment_bytes, named by their first lsn", "[log][segments]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path(), 4096));
  // Batches of two ~1 KB entries: every second batch crosses 4096 bytes, and
  // the batch after it starts a new segment.
  for (int b = 0; b < 8; ++b) AppendAndCommit(*log, 2, 1000);
  CHECK(test::ListDir(dir.path()) ==
        std::vector<std::string>{SegmentName(1), SegmentName(5), SegmentName(9), SegmentName(13)});
  CHECK(log->segment_count() == 4);
  CHECK(log->first_lsn() == 1);
  CHECK(log->total_bytes() == SumOfFileSizes(dir.path()));
  for (const auto& name : test::ListDir(dir.path())) {
    CHECK(test::FileSizeOf(dir.Join(name)) >= 4096);  // each holds two batches
  }
  CheckEntries(ReadFrom(*log, Position{}), 1, 16, "", 1000);

  log.reset();
  RecoveryInfo info;
  log = OpenLog(Options(dir.path(), 4096), &info);
  CHECK(info.segments == 4);
  CHECK(info.next_lsn == 17);
  CHECK(info.bytes == SumOfFileSizes(dir.path()));
  CHECK(info.torn_tail_bytes == 0);
  // The last segment was full when the log closed: the next batch still goes
  // there, and the one after it starts segment 19.
  AppendAndCommit(*log, 2, 1000);
  AppendAndCommit(*log, 2, 1000);
  CHECK(test::ListDir(dir.path()).back() == SegmentName(19));
  CheckEntries(ReadFrom(*log, Position{}), 1, 20, "", 1000);
}

TEST_CASE("DeleteSegmentsBefore deletes only sealed segments entirely below the lsn",
          "[log][segments]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path(), 4096));
  for (int b = 0; b < 6; ++b) AppendAndCommit(*log, 2, 1000);
  // Segments: 1 (lsns 1-4), 5 (5-8), 9 (9-12, active).
  REQUIRE(test::ListDir(dir.path()) ==
          std::vector<std::string>{SegmentName(1), SegmentName(5), SegmentName(9)});

  CHECK(log->DeleteSegmentsBefore(0) == 0);
  CHECK(log->DeleteSegmentsBefore(4) == 0);  // lsn 4 is in segment 1 and not below 4
  CHECK(log->segment_count() == 3);
  CHECK(log->DeleteSegmentsBefore(5) == 1);
  CHECK(test::ListDir(dir.path()) == std::vector<std::string>{SegmentName(5), SegmentName(9)});
  CHECK(log->first_lsn() == 5);
  CHECK(log->total_bytes() == SumOfFileSizes(dir.path()));
  CHECK(log->DeleteSegmentsBefore(8) == 0);
  // Everything is consumed: the active segment stays, its name says where the
  // log goes on.
  CHECK(log->DeleteSegmentsBefore(1000) == 1);
  CHECK(test::ListDir(dir.path()) == std::vector<std::string>{SegmentName(9)});
  CHECK(log->segment_count() == 1);
  CHECK(log->DeleteSegmentsBefore(1000) == 0);
  CheckEntries(ReadFrom(*log, Position{9, 0, 0}), 9, 12, "", 1000);

  // A reader asking for deleted entries is told, and starts at the oldest kept.
  CollectingReporter rep;
  const auto got = ReadFrom(*log, Position{}, &rep);
  CheckEntries(got, 9, 12, "", 1000);
  REQUIRE(rep.drops.size() == 1);
  CHECK(rep.drops[0].reason == "entries 1..8 are no longer in the log");

  log.reset();
  RecoveryInfo info;
  log = OpenLog(Options(dir.path(), 4096), &info);
  CHECK(info.segments == 1);
  CHECK(info.next_lsn == 13);
  CHECK(log->first_lsn() == 9);
}

TEST_CASE("a tail reader follows the durable end across segments", "[log][reader]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path(), 4096));
  std::unique_ptr<TailReader> reader;
  REQUIRE(log->NewReader(Position{}, nullptr, &reader).ok());
  Entry e;
  Status io;
  CHECK(reader->Next(&e, &io) == TailReader::Result::kEnd);

  uint64_t seen = 0;
  for (int b = 0; b < 10; ++b) {
    // Appended but not committed: not visible.
    REQUIRE(AppendEvent(*log, EventFor(seen + 1, "", 1500)) == seen + 1);
    REQUIRE(AppendEvent(*log, EventFor(seen + 2, "", 1500)) == seen + 2);
    REQUIRE(reader->Next(&e, &io) == TailReader::Result::kEnd);
    REQUIRE(Commit(*log).status.ok());
    for (int i = 0; i < 2; ++i) {
      REQUIRE(reader->Next(&e, &io) == TailReader::Result::kEntry);
      REQUIRE(e.header.lsn == ++seen);
      REQUIRE(std::string(reinterpret_cast<const char*>(e.event), e.event_size) ==
              EventFor(seen, "", 1500));
    }
    REQUIRE(reader->Next(&e, &io) == TailReader::Result::kEnd);
    REQUIRE(io.ok());
    const Position p = reader->position();
    CHECK(p.next_lsn == seen + 1);
  }
  CHECK(log->segment_count() >= 5);
  // The reader's position is in the last segment, just past its last entry.
  const std::string last = test::ListDir(dir.path()).back();
  CHECK(reader->position().segment == std::stoull(last.substr(0, 20)));
  CHECK(reader->position().offset == test::FileSizeOf(dir.Join(last)));
}

TEST_CASE("a reader starts from a Position, using its hint when it is valid", "[log][reader]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path(), 4096));
  for (int b = 0; b < 8; ++b) AppendAndCommit(*log, 2, 1000);
  // Segments 1, 5, 9, 13. Read up to lsn 10 and remember where.
  std::unique_ptr<TailReader> r;
  REQUIRE(log->NewReader(Position{}, nullptr, &r).ok());
  Entry e;
  Status io;
  for (uint64_t lsn = 1; lsn <= 10; ++lsn) {
    REQUIRE(r->Next(&e, &io) == TailReader::Result::kEntry);
    REQUIRE(e.header.lsn == lsn);
  }
  const Position p = r->position();
  CHECK(p.next_lsn == 11);
  CHECK(p.segment == 9);
  CHECK(p.offset > 0);

  SECTION("with the hint") { CheckEntries(ReadFrom(*log, p), 11, 16, "", 1000); }
  SECTION("without a hint") { CheckEntries(ReadFrom(*log, Position{11, 0, 0}), 11, 16, "", 1000); }
  SECTION("with a hint for another segment, which is ignored") {
    CheckEntries(ReadFrom(*log, Position{11, 5, p.offset}), 11, 16, "", 1000);
  }
  SECTION("the hint is used: damage before it is not read") {
    // Damage entry 9, the first of segment 9. A reader from the hint never
    // reads it; one without the hint reports it and still starts at 11.
    const std::string seg = dir.Join(SegmentName(9));
    std::string bytes = test::ReadFileOrDie(seg);
    bytes[kHeaderSize + kEntryHeaderSize + 3] ^= 1;
    test::WriteFileOrDie(seg, bytes);
    CollectingReporter with_hint, without_hint;
    CheckEntries(ReadFrom(*log, p, &with_hint), 11, 16, "", 1000);
    CHECK(with_hint.drops.empty());
    const auto got = ReadFrom(*log, Position{11, 0, 0}, &without_hint);
    REQUIRE(without_hint.drops.size() == 1);
    CHECK(without_hint.drops[0].offset == 0);
    CHECK(without_hint.drops[0].reason == "checksum mismatch");
    // Segment 9 is one block: 10, 11 and 12 are lost with the damaged 9.
    CheckEntries(got, 13, 16, "", 1000);
  }
  SECTION("from the end, nothing until more is committed") {
    Position end;
    CHECK(ReadFrom(*log, Position{}, nullptr, &end).size() == 16);
    CHECK(end.next_lsn == 17);
    CHECK(ReadFrom(*log, end).empty());
    AppendAndCommit(*log, 2, 1000);
    CheckEntries(ReadFrom(*log, end), 17, 18, "", 1000);
  }
}

TEST_CASE("a reader whose finished segment is deleted moves on to the next", "[log][reader]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path(), 4096));
  for (int b = 0; b < 2; ++b) AppendAndCommit(*log, 2, 1000);
  std::unique_ptr<TailReader> r;
  REQUIRE(log->NewReader(Position{}, nullptr, &r).ok());
  Entry e;
  Status io;
  for (uint64_t lsn = 1; lsn <= 4; ++lsn) {
    REQUIRE(r->Next(&e, &io) == TailReader::Result::kEntry);
    REQUIRE(e.header.lsn == lsn);
  }
  REQUIRE(r->Next(&e, &io) == TailReader::Result::kEnd);
  for (int b = 0; b < 2; ++b) AppendAndCommit(*log, 2, 1000);
  REQUIRE(log->DeleteSegmentsBefore(5) == 1);
  for (uint64_t lsn = 5; lsn <= 8; ++lsn) {
    REQUIRE(r->Next(&e, &io) == TailReader::Result::kEntry);
    REQUIRE(e.header.lsn == lsn);
  }
  CHECK(r->Next(&e, &io) == TailReader::Result::kEnd);
  CHECK(io.ok());
}

TEST_CASE("WaitDurable returns once the lsn is durable, or at its timeout", "[log]") {
  TempDir dir;
  auto log = OpenLog(Options(dir.path()));
  AppendAndCommit(*log, 1);
  log->WaitDurable(1, 10 * 1000 * 1000);  // already durable: returns at once

  const auto t0 = std::chrono::steady_clock::now();
  log->WaitDurable(2, 20 * 1000);
  CHECK(std::chrono::steady_clock::now() - t0 >= std::chrono::milliseconds(15));

  std::atomic<bool> woke{false};
  std::thread waiter([&] {
    log->WaitDurable(2, 10 * 1000 * 1000);
    woke = true;
  });
  REQUIRE(AppendEvent(*log, EventFor(2)) == 2);
  REQUIRE(Commit(*log).status.ok());
  waiter.join();
  CHECK(woke.load());
  CHECK(log->durable_next_lsn() == 3);
}

TEST_CASE("a failed write or sync fails the batch and leaves no partial entry", "[log][faults]") {
  FaultGuard guard;
  TempDir dir;
  const std::string seg = dir.Join(SegmentName(1));
  auto log = OpenLog(Options(dir.path()));
  AppendAndCommit(*log, 3, 200);
  const uint64_t durable_size = test::FileSizeOf(seg);

  auto check_failed = [&](const CommitResult& r, const char* what) {
    INFO(r.status.ToString());
    CHECK_FALSE(r.status.ok());
    CHECK(r.status.code() == Status::Code::kIoError);
    CHECK_THAT(r.status.message(),
               Catch::Contains(what) && Catch::Contains("no space left on device"));
    CHECK(log->durable_next_lsn() == 4);
    CHECK(test::FileSizeOf(seg) == durable_size);  // cut off again
    CheckEntries(ReadFrom(*log, Position{}), 1, 3, "", 200);
  };

  SECTION("write") {
    fs::InjectFault("write", 1, ENOSPC, false);
    REQUIRE(AppendEvent(*log, EventFor(4, " lost", 200)) == 4);
    check_failed(Commit(*log), "log write failed");
  }
  SECTION("fdatasync") {
    fs::InjectFault("fsync", 1, ENOSPC, false);
    REQUIRE(AppendEvent(*log, EventFor(4, " lost", 200)) == 4);
    check_failed(Commit(*log), "log sync failed");
  }
  SECTION("sticky: every commit fails until the fault is cleared") {
    fs::InjectFault("write", 1, ENOSPC, true);
    for (int i = 0; i < 3; ++i) {
      REQUIRE(AppendEvent(*log, EventFor(4, " lost", 200)) == 4);  // lsns are taken again
      REQUIRE(AppendEvent(*log, EventFor(5, " lost", 200)) == 5);
      const CommitResult r = Commit(*log);
      CHECK(r.first_lsn == 4);
      CHECK(r.last_lsn == 5);
      check_failed(r, "log write failed");
    }
    CHECK(log->stats().errors.load() == 3);
  }
  SECTION("the batch collected behind a failed one fails with it") {
    fs::InjectFault("write", 1, ENOSPC, false);
    REQUIRE(AppendEvent(*log, EventFor(4, " lost", 200)) == 4);
    uint64_t gen;
    REQUIRE(log->StartCommit(&gen));
    REQUIRE(AppendEvent(*log, EventFor(5, " lost", 200)) == 5);
    REQUIRE(AppendEvent(*log, EventFor(6, " lost", 200)) == 6);
    CommitResult pending_failed;
    const CommitResult r = AwaitCompletion(*log, &pending_failed);
    check_failed(r, "log write failed");
    CHECK(r.first_lsn == 4);
    CHECK(r.last_lsn == 4);
    CHECK_FALSE(pending_failed.status.ok());
    CHECK(pending_failed.status.message() == r.status.message());
    CHECK(pending_failed.first_lsn == 5);
    CHECK(pending_failed.last_lsn == 6);
    CHECK(log->pending_entries() == 0);
    CHECK(log->pending_bytes() == 0);
    CHECK_FALSE(log->commit_in_flight());
  }

  // After the fault is gone the log goes on from its durable end, and a
  // reopened log holds exactly what was acknowledged.
  fs::ClearFaults();
  AppendAndCommit(*log, 2, 200, " kept");
  std::vector<Got> got = ReadFrom(*log, Position{});
  REQUIRE(Lsns(got) == Range(1, 5));
  CHECK(got[3].event == EventFor(4, " kept", 200));
  CHECK(got[4].event == EventFor(5, " kept", 200));
  log.reset();
  RecoveryInfo info;
  log = OpenLog(Options(dir.path()), &info);
  CHECK(info.torn_tail_bytes == 0);
  CHECK(info.corrupt_bytes == 0);
  CHECK(info.next_lsn == 6);
  got = ReadFrom(*log, Position{});
  REQUIRE(Lsns(got) == Range(1, 5));
  CheckEntries(std::vector<Got>(got.begin(), got.begin() + 3), 1, 3, "", 200);
  CHECK(got[3].event == EventFor(4, " kept", 200));
  CHECK(got[4].event == EventFor(5, " kept", 200));
}

TEST_CASE("a failed write into a new segment removes it and the log stays in the old one",
          "[log][faults][segments]") {
  FaultGuard guard;
  TempDir dir;
  auto log = OpenLog(Options(dir.path(), 4096));
  AppendAndCommit(*log, 5, 1000);  // past 4096: the next batch starts segment 6
  REQUIRE(test::ListDir(dir.path()) == std::vector<std::string>{SegmentName(1)});
  const uint64_t size1 = test::FileSizeOf(dir.Join(SegmentName(1)));

  SECTION("the write fails") { fs::InjectFault("write", 1, ENOSPC, false); }
  SECTION("the directory sync after creating the segment fails") {
    fs::InjectFault("fsync", 1, ENOSPC, false);
  }
  SECTION("the data sync fails") { fs::InjectFault("fsync", 2, ENOSPC, false); }
  REQUIRE(AppendEvent(*log, EventFor(6, " lost", 1000)) == 6);
  const CommitResult r = Commit(*log);
  INFO(r.status.ToString());
  CHECK_FALSE(r.status.ok());
  CHECK_THAT(r.status.message(), Catch::Contains("no space left on device"));
  CHECK(test::ListDir(dir.path()) == std::vector<std::string>{SegmentName(1)});
  CHECK(test::FileSizeOf(dir.Join(SegmentName(1))) == size1);
  CHECK(log->segment_count() == 1);

  fs::ClearFaults();
  AppendAndCommit(*log, 1, 1000, " kept");
  AppendAndCommit(*log, 1, 1000, " kept");
  const auto got = ReadFrom(*log, Position{});
  REQUIRE(Lsns(got) == Range(1, 7));
  CHECK(got[5].event == EventFor(6, " kept", 1000));
  log.reset();
  RecoveryInfo info;
  log = OpenLog(Options(dir.path(), 4096), &info);
  CHECK(info.torn_tail_bytes == 0);
  CHECK(info.next_lsn == 8);
  const auto again = ReadFrom(*log, Position{});
  REQUIRE(Lsns(again) == Range(1, 7));
  CHECK(again[5].event == EventFor(6, " kept", 1000));
  CHECK(again[6].event == EventFor(7, " kept", 1000));
}

TEST_CASE("fsync: never acknowledges after the write alone", "[log][faults]") {
  FaultGuard guard;
  TempDir dir;
  LogOptions o = Options(dir.path());
  o.fsync = FsyncPolicy::kNever;
  auto log = OpenLog(o);
  fs::InjectFault("fsync", 1, EIO, true);  // any sync would fail
  AppendAndCommit(*log, 3);
  fs::ClearFaults();
  CheckEntries(ReadFrom(*log, Position{}), 1, 3);
}

// A stored event as ingest writes it: [dests, key, options, payload].
std::string StoredEvent(const std::string& key) {
  return test::Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(2);
    w.Nil();
    w.Str("logs");
    w.Str(key);
    w.Nil();
    w.MapHeader(1);
    w.Str("n");
    w.Int(1);
  });
}

TEST_CASE("readers report and skip entries whose CRC holds but whose event is malformed",
          "[log][reader]") {
  TempDir dir;
  LogOptions o = Options(dir.path());
  o.check_events = true;
  auto log = OpenLog(o);
  const std::string good = StoredEvent("k");
  // Each is framed and checksummed like any entry: only its content is wrong.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"", "truncated: value expected"},
      {std::string("\x94\xc0\xc0\xc0", 4), "container claims more entries"},  // no payload
      {std::string("\x92\xc0\xc0", 3), "must be the array [destinations, key, options, payload]"},
      {good + "x", "1 trailing bytes after the event"},
      {std::string("\x94\x91\x81\xa1" "a\x01\xc0\xc0\x80", 9), "destinations[0] must be"},
      {std::string("\x94\xc0\x05\xc0\x80", 5), "key must be nil or a string"},
      {std::string("\x94\xc0\xc0\x91\x01\x80", 6), "options must be nil or a map"},
      {std::string("\x94\xc0\xc0\xc0\xa1x", 6), "payload must be a map"},
      {std::string("\x94\xc0\xc0\xc0\xdf\xff\xff\xff\xff", 9), "more entries than bytes"},
  };
  AppendEvent(*log, good, 1);  // lsn 1
  for (size_t i = 0; i < bad.size(); ++i) AppendEvent(*log, bad[i].first, 2 + i);
  AppendEvent(*log, good, 100);  // lsn 11
  REQUIRE(Commit(*log).status.ok());
  // Read by the next process to open the log: entries it did not write.
  log.reset();
  log = OpenLog(o);

  CollectingReporter reporter;
  Position end;
  const auto got = ReadFrom(*log, Position{}, &reporter, &end);
  REQUIRE(got.size() == 2);
  CHECK(got[0].lsn == 1);
  CHECK(got[1].lsn == bad.size() + 2);
  CHECK(end.next_lsn == bad.size() + 3);
  for (const auto& d : reporter.drops) UNSCOPED_INFO(d.reason);
  REQUIRE(reporter.drops.size() == bad.size());
  for (size_t i = 0; i < bad.size(); ++i) {
    INFO(i << ": " << reporter.drops[i].reason);
    CHECK_THAT(reporter.drops[i].reason,
               Catch::Contains("entry lsn " + std::to_string(i + 2) + ": stored event: "));
    CHECK_THAT(reporter.drops[i].reason, Catch::Contains(bad[i].second));
    CHECK_THAT(reporter.drops[i].reason, Catch::Contains(SegmentName(1)));
  }
}

TEST_CASE("readers check the events of entries from before the log was opened, not of those "
          "this process appended, and tell the two apart by position, not by lsn",
          "[log][reader]") {
  TempDir dir;
  LogOptions o = Options(dir.path());
  o.check_events = true;
  const std::string good = StoredEvent("k");
  const std::string bad("\x94\xc0\xc0\xc0\xa1x", 6);  // payload not a map
  {
    auto log = OpenLog(o);
    AppendEvent(*log, good, 1);
    AppendEvent(*log, bad, 2);
    REQUIRE(Commit(*log).status.ok());
  }
  auto log = OpenLog(o);
  // Appended now: what ingest checked is not walked again (appended
  // directly here, bypassing ingest, to show the reader does not look).
  AppendEvent(*log, good, 3);
  AppendEvent(*log, bad, 4);
  REQUIRE(Commit(*log).status.ok());
  CollectingReporter reporter;
  auto got = ReadFrom(*log, Position{}, &reporter);
  CHECK(Lsns(got) == std::vector<uint64_t>{1, 3, 4});
  REQUIRE(reporter.drops.size() == 1);
  CHECK_THAT(reporter.drops[0].reason, Catch::Contains("entry lsn 2: stored event: payload must be a map"));

  // The next process checks everything the last one wrote.
  log.reset();
  log = OpenLog(o);
  CollectingReporter again;
  got = ReadFrom(*log, Position{}, &again);
  CHECK(Lsns(got) == std::vector<uint64_t>{1, 3});
  REQUIRE(again.drops.size() == 2);
  CHECK_THAT(again.drops[1].reason, Catch::Contains("entry lsn 4: stored event: payload must be a map"));
}

TEST_CASE("readers skip an entry whose lsn lies past the durable end", "[log][reader]") {
  TempDir dir;
  // Every commit seals its segment: entries 1-2 in one, 3 in the next.
  LogOptions o = Options(dir.path(), 1);
  o.check_events = true;
  {
    auto log = OpenLog(o);
    AppendEvent(*log, StoredEvent("a"), 1);
    AppendEvent(*log, StoredEvent("b"), 2);
    REQUIRE(Commit(*log).status.ok());
    AppendEvent(*log, StoredEvent("c"), 3);
    REQUIRE(Commit(*log).status.ok());
  }
  // Rewrite entry 2 in the sealed segment with a lying lsn and a valid
  // checksum, as an edit would.
  const std::string path = dir.Join(SegmentName(1));
  const std::string bytes = test::ReadFileOrDie(path);
  LogWriter w;
  wire::Buffer framed;
  uint8_t hdr[kEntryHeaderSize];
  for (const auto& [lsn, key] : {std::pair<uint64_t, const char*>{1, "a"}, {1000, "b"}}) {
    EntryHeader h;
    h.lsn = lsn;
    std::memcpy(h.client_id, kClient, sizeof(kClient));
    h.seq = lsn;
    h.recv_us = static_cast<int64_t>(lsn);
    h.EncodeTo(hdr);
    const std::string event = StoredEvent(key);
    w.AddRecord(hdr, kEntryHeaderSize, test::U8(event), event.size(), &framed);
  }
  REQUIRE(framed.size() == bytes.size());
  test::WriteFileOrDie(path, std::string(framed.view()));

  auto log = OpenLog(o);
  CHECK(log->durable_next_lsn() == 4);
  CollectingReporter reporter;
  const auto got = ReadFrom(*log, Position{}, &reporter);
  REQUIRE(Lsns(got) == std::vector<uint64_t>{1, 3});
  REQUIRE(reporter.drops.size() == 1);
  CHECK_THAT(reporter.drops[0].reason, Catch::Contains("lsn 1000 is past the durable end 4"));
}

}  // namespace forkd::log
