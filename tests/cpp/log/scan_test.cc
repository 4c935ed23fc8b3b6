// ScanLog reads a log's entries without opening it, as `forkd verify` does
// beside a running forkd: in order, across segments, from an lsn, and with
// what the log retains (its first entry) reported.
#include "log/scan.h"

#include <poll.h>

#include "log/log.h"
#include "test_util.h"

namespace forkd::log {
namespace {

using test::TempDir;

std::string Event(uint64_t i) {
  return test::Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.Str("a");
    w.Nil();
    w.Nil();
    w.MapHeader(2);
    w.Str("i");
    w.Uint(i);
    w.Str("pad");
    w.Str(std::string(200, 'x'));
  });
}

void Fill(Log* log, uint64_t from, uint64_t to) {
  uint8_t client[16] = {1};
  for (uint64_t i = from; i <= to; ++i) {
    const std::string e = Event(i);
    log->Append(static_cast<int64_t>(i) * 1000, client, i, test::U8(e), e.size());
    uint64_t gen;
    REQUIRE(log->StartCommit(&gen));
    pollfd p{log->completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    CommitResult r, pf;
    REQUIRE(log->TakeCompletion(&r, &pf));
    REQUIRE(r.status.ok());
  }
}

}  // namespace

TEST_CASE("ScanLog reads every entry in order across segments, from an lsn, while the log is open", "[scan][log]") {
  TempDir dir;
  LogOptions o;
  o.dir = dir.Join("wal");
  o.segment_bytes = 4096;
  std::unique_ptr<Log> log;
  RecoveryInfo info;
  REQUIRE(Log::Open(o, &log, &info).ok());
  Fill(log.get(), 1, 100);
  REQUIRE(log->segment_count() > 3);

  std::vector<uint64_t> seen;
  ScanInfo si;
  REQUIRE(ScanLog(o.dir, 0, 0, [&](const Entry& e) { seen.push_back(e.header.lsn); return true; }, &si).ok());
  REQUIRE(seen.size() == 100);
  for (size_t i = 0; i < seen.size(); ++i) CHECK(seen[i] == i + 1);
  CHECK(si.first_lsn == 1);
  CHECK(si.first_recv_us == 1000);
  CHECK(si.next_lsn == 101);
  CHECK(si.damaged == 0);

  // From lsn 60 up to (not including) 70.
  seen.clear();
  REQUIRE(ScanLog(o.dir, 60, 70, [&](const Entry& e) { seen.push_back(e.header.lsn); return true; }, &si).ok());
  REQUIRE(seen.size() == 10);
  CHECK(seen.front() == 60);
  CHECK(seen.back() == 69);
  CHECK(si.first_lsn == 1);  // the oldest retained, even when skipped

  // After retention deleted the first segments, the first retained entry says where the log starts.
  const size_t deleted = log->DeleteSegmentsBefore(50);
  REQUIRE(deleted > 0);
  seen.clear();
  REQUIRE(ScanLog(o.dir, 0, 0, [&](const Entry& e) { seen.push_back(e.header.lsn); return true; }, &si).ok());
  CHECK(si.first_lsn == seen.front());
  CHECK(si.first_lsn > 1);
  CHECK(seen.back() == 100);
  CHECK(si.first_recv_us == static_cast<int64_t>(si.first_lsn) * 1000);
}

TEST_CASE("ScanLog stops when asked and reports a missing log as NotFound", "[scan][log]") {
  TempDir dir;
  ScanInfo si;
  Status s = ScanLog(dir.Join("nope"), 0, 0, [](const Entry&) { return true; }, &si);
  CHECK(s.IsNotFound());
  LogOptions o;
  o.dir = dir.Join("wal");
  std::unique_ptr<Log> log;
  RecoveryInfo info;
  REQUIRE(Log::Open(o, &log, &info).ok());
  Fill(log.get(), 1, 10);
  int n = 0;
  REQUIRE(ScanLog(o.dir, 0, 0, [&](const Entry&) { return ++n < 3; }, &si).ok());
  CHECK(n == 3);
}

}  // namespace forkd::log
