// Pipelined delivery (pipeline_flights.cc) against a scripted sink: up to
// batch.in_flight batches on their way, answered in the order sent, the
// cursor never past a batch not yet answered ok; a failed batch read again
// from its start and delivered by Flush, a refused record dead-lettered
// alone; nothing lost.
#include <poll.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <set>

#include "log/cursors.h"
#include "log/log.h"
#include "pipeline/dead_letters.h"
#include "pipeline/pipeline.h"
#include "test_util.h"

namespace forkd::pipeline {
namespace {

using test::TempDir;

// What the sink saw, shared with the test.
struct Seen {
  std::mutex mu;
  std::map<uint64_t, int> delivered;  // lsn -> times the store took it
  int max_outstanding = 0;
  int sends = 0;
  int flushes = 0;
  int out_of_order = 0;       // an Await not for the oldest batch sent
  int cursor_too_far = 0;     // the cursor past a batch not answered ok
  std::set<uint64_t> fail_ticket;      // Await answers retry, once
  std::set<uint64_t> fail_send;        // Send answers retry, once
  std::set<uint64_t> refuse_lsn;       // any batch holding it is fatal
  int fail_flushes = 0;                // this many Flushes answer retry
  std::function<uint64_t()> committed;  // the pipeline's committed cursor
};

class ScriptedSink : public sinks::Sink {
 public:
  ScriptedSink(Seen* seen, bool idempotent, bool by_default = true)
      : seen_(seen), idempotent_(idempotent), by_default_(by_default) {}
  Status Open(const std::string&) override { return Status::Ok(); }
  void Write(const sinks::Record& r) override { batch_.push_back(r.header->lsn); }
  size_t buffered_bytes() const override { return batch_.size() * 16; }
  Status Flush() override {
    std::lock_guard<std::mutex> lock(seen_->mu);
    ++seen_->flushes;
    if (seen_->fail_flushes > 0) {
      --seen_->fail_flushes;
      return Status::Retry("scripted flush failure");
    }
    if (Refused(batch_)) return Status::Fatal("scripted refusal");
    for (uint64_t lsn : batch_) ++seen_->delivered[lsn];
    batch_.clear();
    return Status::Ok();
  }
  void Discard() override { batch_.clear(); }
  bool idempotent() const override { return idempotent_; }
  bool pipelines() const override { return true; }
  bool pipelines_by_default() const override { return by_default_; }
  Status Send(uint64_t ticket) override {
    std::lock_guard<std::mutex> lock(seen_->mu);
    ++seen_->sends;
    if (seen_->fail_send.erase(ticket) != 0) {
      batch_.clear();
      return Status::Retry("scripted send failure");
    }
    CheckCursor();
    sent_.emplace_back(ticket, std::move(batch_));
    batch_.clear();
    seen_->max_outstanding = std::max(seen_->max_outstanding, static_cast<int>(sent_.size()));
    return Status::Ok();
  }
  Status Await(uint64_t ticket) override {
    std::lock_guard<std::mutex> lock(seen_->mu);
    CheckCursor();
    if (sent_.empty() || sent_.front().first != ticket) {
      ++seen_->out_of_order;
      return Status::Fatal("awaited out of order");
    }
    const std::vector<uint64_t> b = std::move(sent_.front().second);
    sent_.erase(sent_.begin());
    if (seen_->fail_ticket.erase(ticket) != 0) return Status::Retry("scripted failure");
    if (Refused(b)) return Status::Fatal("scripted refusal");
    for (uint64_t lsn : b) ++seen_->delivered[lsn];
    return Status::Ok();
  }

 private:
  bool Refused(const std::vector<uint64_t>& b) const {
    return std::any_of(b.begin(), b.end(), [&](uint64_t l) { return seen_->refuse_lsn.count(l) != 0; });
  }
  // Every batch on its way starts at or past the committed cursor.
  void CheckCursor() {
    if (!seen_->committed) return;
    const uint64_t c = seen_->committed();
    for (const auto& [t, b] : sent_) {
      if (!b.empty() && c > b.front()) ++seen_->cursor_too_far;
    }
  }
  Seen* seen_;
  bool idempotent_;
  bool by_default_;
  std::vector<uint64_t> batch_;
  std::vector<std::pair<uint64_t, std::vector<uint64_t>>> sent_;
};

std::string Event(const std::string& dest) {
  return test::Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.Str(dest);
    w.Nil();
    w.Nil();
    w.MapHeader(1);
    w.Str("n");
    w.Int(1);
  });
}

// `count` events, every `other`-th to another destination (0: none).
struct Rig {
  Rig(const TempDir& dir, uint64_t count, uint64_t other = 0)
      : cursors(dir.Join("cursors")), letters(dir.Join("dlq")) {
    log::LogOptions o;
    o.dir = dir.Join("wal");
    log::RecoveryInfo info;
    REQUIRE(log::Log::Open(o, &log, &info).ok());
    REQUIRE(cursors.Init().ok());
    REQUIRE(letters.Init().ok());
    // A cursor at the start: a destination without one starts at the log's end.
    REQUIRE(cursors.Save("d", log::Cursor{log::Position{1, 0, 0}, ""}).ok());
    uint8_t client[16] = {0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
    for (uint64_t i = 1; i <= count; ++i) {
      const std::string e = Event(other != 0 && i % other == 0 ? "elsewhere" : "d");
      log->Append(1700000000000000 + static_cast<int64_t>(i), client, i, test::U8(e), e.size());
    }
    uint64_t gen;
    REQUIRE(log->StartCommit(&gen));
    pollfd p{log->completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    log::CommitResult r, pf;
    REQUIRE(log->TakeCompletion(&r, &pf));
    REQUIRE(r.status.ok());
    dest.name.push_back('d');  // (not = "d": a false -Wrestrict in GCC 12)
    dest.type = "scripted";
    dest.batch_max_events = 10;
    dest.batch_max_bytes = 1 << 20;
    dest.batch_max_wait_ms = 5;
    dest.batch_in_flight = 4;
    dest.retry_initial_ms = 1;
    dest.retry_max_ms = 5;
    config.destinations.push_back(dest);
  }
  // Runs the destination until it has delivered everything, then drains.
  void Run(Seen* seen, bool idempotent = true, bool by_default = true) {
    auto p = std::make_unique<Pipeline>(dest, config, std::make_unique<ScriptedSink>(seen, idempotent, by_default),
                                        log.get(), &cursors, &letters);
    Pipeline* raw = p.get();
    seen->committed = [raw] { return raw->committed_next_lsn(); };
    REQUIRE(p->Start().ok());
    const uint64_t end = log->durable_next_lsn();
    for (int i = 0; i < 1000 && p->delivered_next_lsn() < end; ++i) ::usleep(5000);
    CHECK(p->delivered_next_lsn() == end);
    p->Stop(true, 5000);
    CHECK(p->committed_next_lsn() == end);
    resends = p->stats().resends.load();
    retries = p->stats().retries.load();
    delivered = p->stats().delivered.load();
    breaker_opens = p->breaker_opens();
    seen->committed = nullptr;
  }
  std::vector<std::string> DeadLetters() {
    std::vector<std::string> lines;
    REQUIRE(letters.Read("d", &lines).ok());
    return lines;
  }
  std::unique_ptr<log::Log> log;
  log::CursorStore cursors;
  pipeline::DeadLetters letters;
  DestinationConfig dest;
  Config config;
  uint64_t resends = 0;
  uint64_t retries = 0;
  uint64_t delivered = 0;
  uint64_t breaker_opens = 0;
};

}  // namespace

TEST_CASE("pipelined: up to batch.in_flight batches on their way, answered in order, each record once",
          "[pipeline][pipelined]") {
  TempDir dir;
  Rig rig(dir, 200, 7);  // every 7th event is another destination's
  Seen seen;
  rig.Run(&seen);
  CHECK(seen.max_outstanding == 4);
  CHECK(seen.out_of_order == 0);
  CHECK(seen.cursor_too_far == 0);
  CHECK(seen.flushes == 0);  // nothing went the unpipelined way
  uint64_t ours = 0;
  for (uint64_t lsn = 1; lsn <= 200; ++lsn) {
    INFO("lsn " << lsn);
    CHECK(seen.delivered[lsn] == (lsn % 7 == 0 ? 0 : 1));
    ours += lsn % 7 == 0 ? 0 : 1;
  }
  CHECK(rig.delivered == ours);
  CHECK(rig.resends == 0);
  CHECK(rig.DeadLetters().empty());
}

TEST_CASE("pipelined: a batch that fails is read again from its start and delivered by Flush; "
          "the batches after it are sent again; nothing is lost",
          "[pipeline][pipelined]") {
  TempDir dir;
  Rig rig(dir, 200);
  Seen seen;
  seen.fail_ticket = {3, 9};
  seen.fail_send = {15};
  rig.Run(&seen);
  CHECK(seen.out_of_order == 0);
  CHECK(seen.cursor_too_far == 0);
  CHECK(seen.fail_ticket.empty());  // both failures were hit
  CHECK(seen.fail_send.empty());
  CHECK(seen.flushes == 3);         // each failed batch once, by Flush
  CHECK(rig.resends >= 3);
  CHECK(rig.retries == 3);          // each failed flight counts as a retry
  int twice = 0;
  for (uint64_t lsn = 1; lsn <= 200; ++lsn) {
    INFO("lsn " << lsn);
    CHECK(seen.delivered[lsn] >= 1);
    CHECK(seen.delivered[lsn] <= 2);
    twice += seen.delivered[lsn] == 2 ? 1 : 0;
  }
  CHECK(twice > 0);  // batches after a failed one that had landed went again
  CHECK(rig.DeadLetters().empty());
}

TEST_CASE("pipelined: a failed flight counts toward the breaker as a failed Flush does",
          "[pipeline][pipelined]") {
  // breaker.failures 2: the failed flight, then the Flush that resends its
  // batch failing too, are two consecutive failures and open the breaker.
  TempDir dir;
  Rig rig(dir, 100);
  rig.dest.breaker_failures = 2;
  rig.dest.breaker_cooldown_ms = 20;
  Seen seen;
  seen.fail_ticket = {2};
  seen.fail_flushes = 1;
  rig.Run(&seen);
  CHECK(seen.fail_ticket.empty());
  CHECK(seen.fail_flushes == 0);
  CHECK(rig.breaker_opens == 1);
  CHECK(rig.retries == 2);  // the flight, then the Flush
  for (uint64_t lsn = 1; lsn <= 100; ++lsn) CHECK(seen.delivered[lsn] >= 1);

  // One failure alone (breaker.failures 2) does not open it.
  TempDir dir2;
  Rig once(dir2, 100);
  once.dest.breaker_failures = 2;
  Seen seen2;
  seen2.fail_ticket = {2};
  once.Run(&seen2);
  CHECK(seen2.fail_ticket.empty());
  CHECK(once.breaker_opens == 0);
}

TEST_CASE("pipelined: a record the store refuses goes to dead letters alone, the rest is delivered",
          "[pipeline][pipelined]") {
  TempDir dir;
  Rig rig(dir, 100);
  Seen seen;
  seen.refuse_lsn = {57};
  rig.Run(&seen, /*idempotent=*/false);
  CHECK(seen.out_of_order == 0);
  CHECK(seen.cursor_too_far == 0);
  for (uint64_t lsn = 1; lsn <= 100; ++lsn) {
    INFO("lsn " << lsn);
    CHECK(seen.delivered[lsn] >= (lsn == 57 ? 0 : 1));
  }
  CHECK(seen.delivered[57] == 0);
  CHECK(rig.retries == 0);  // refused, not retried: split instead
  const auto lines = rig.DeadLetters();
  REQUIRE(lines.size() == 1);
  CHECK(lines[0].find("\"lsn\":57") != std::string::npos);
  CHECK(lines[0].find("scripted refusal") != std::string::npos);
}

TEST_CASE("pipelined: batch.in_flight 1 delivers one batch at a time by Flush", "[pipeline][pipelined]") {
  TempDir dir;
  Rig rig(dir, 50);
  rig.dest.batch_in_flight = 1;
  Seen seen;
  rig.Run(&seen);
  CHECK(seen.sends == 0);
  CHECK(seen.flushes == 5);
  for (uint64_t lsn = 1; lsn <= 50; ++lsn) CHECK(seen.delivered[lsn] == 1);
}

TEST_CASE("pipelined: batch.in_flight unset is 4 for a sink that pipelines by default, 1 for one "
          "that pipelines only when asked (http)",
          "[pipeline][pipelined]") {
  {
    TempDir dir;
    Rig rig(dir, 100);
    rig.dest.batch_in_flight = 0;  // not in the file
    Seen seen;
    rig.Run(&seen);
    CHECK(seen.max_outstanding == 4);
    CHECK(seen.flushes == 0);
  }
  {
    TempDir dir;
    Rig rig(dir, 100);
    rig.dest.batch_in_flight = 0;
    Seen seen;
    rig.Run(&seen, true, /*by_default=*/false);
    CHECK(seen.sends == 0);
    CHECK(seen.flushes == 10);
  }
  {
    TempDir dir;
    Rig rig(dir, 100);
    rig.dest.batch_in_flight = 3;  // asked for
    Seen seen;
    rig.Run(&seen, true, /*by_default=*/false);
    CHECK(seen.max_outstanding == 3);
    for (uint64_t lsn = 1; lsn <= 100; ++lsn) CHECK(seen.delivered[lsn] == 1);
  }
}

}  // namespace forkd::pipeline
