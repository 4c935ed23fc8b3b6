// Counting what a cursor holds for a destination: the entries routed to it,
// named in any of the forms a stored event's destination list takes, from its
// cursor to a given end, across segments and past deleted ones.
#include "log/backlog.h"

#include <poll.h>

#include "test_util.h"

namespace forkd::log {
namespace {

using test::TempDir;

// A stored event [dests, key, options, payload] whose destination list is
// built by `dests`.
std::string Event(const std::function<void(wire::Writer&)>& dests) {
  return test::Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    dests(w);
    w.Nil();
    w.Nil();
    w.MapHeader(1);
    w.Str("n");
    w.Int(1);
  });
}

std::string Named(std::vector<std::string> names) {
  return Event([&](wire::Writer& w) {
    w.ArrayHeader(static_cast<uint32_t>(names.size()));
    for (const auto& n : names) w.Str(n);
  });
}

Entry EntryOf(const std::string& event) {
  Entry e;
  e.event = test::U8(event);
  e.event_size = event.size();
  return e;
}

class TestLog {
 public:
  explicit TestLog(const TempDir& dir) {
    LogOptions o;
    o.dir = dir.Join("wal");
    o.segment_bytes = 4096;
    RecoveryInfo info;
    REQUIRE(Log::Open(o, &log, &info).ok());
  }
  void Append(const std::string& event, int64_t recv_us = 0) {
    const uint8_t client[16] = {};
    log->Append(recv_us, client, ++seq_, test::U8(event), event.size());
    uint64_t gen;
    REQUIRE(log->StartCommit(&gen));
    pollfd p{log->completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    CommitResult r, pf;
    REQUIRE(log->TakeCompletion(&r, &pf));
    REQUIRE(r.status.ok());
  }
  std::unique_ptr<Log> log;

 private:
  uint64_t seq_ = 0;
};

}  // namespace

TEST_CASE("RoutedTo finds a destination by name or in a route's entry, and nothing else",
          "[backlog]") {
  CHECK(RoutedTo(EntryOf(Named({"logs", "orders"})), "orders"));
  CHECK(RoutedTo(EntryOf(Named({"orders"})), "orders"));
  CHECK_FALSE(RoutedTo(EntryOf(Named({"logs"})), "orders"));
  CHECK_FALSE(RoutedTo(EntryOf(Named({"orders2", "order"})), "orders"));
  CHECK_FALSE(RoutedTo(EntryOf(Named({})), "orders"));
  // Chosen by routes (a leading nil), one of them with its templates.
  const std::string routed = Event([](wire::Writer& w) {
    w.ArrayHeader(3);
    w.Nil();
    w.ArrayHeader(3);
    w.Str("analytics");
    w.Str("clean");
    w.Str("tag");
    w.Str("logs");
  });
  CHECK(RoutedTo(EntryOf(routed), "analytics"));
  CHECK(RoutedTo(EntryOf(routed), "logs"));
  CHECK_FALSE(RoutedTo(EntryOf(routed), "clean"));
  // No list at all (nil): routed nowhere by name.
  CHECK_FALSE(RoutedTo(EntryOf(Event([](wire::Writer& w) { w.Nil(); })), "logs"));
}

TEST_CASE("CountRouted counts each destination's entries from its cursor to the end, in one pass",
          "[backlog][log]") {
  TempDir dir;
  TestLog t(dir);
  // lsn 1..300: every entry to logs, every third also to hook, every fifth
  // only to audit (then not to logs).
  for (int i = 1; i <= 300; ++i) {
    std::vector<std::string> to;
    if (i % 5 != 0) to.push_back("logs");
    if (i % 3 == 0) to.push_back("hook");
    if (i % 5 == 0) to = {"audit"};
    t.Append(Named(to));
  }
  REQUIRE(t.log->segment_count() > 3);
  auto expected = [](const std::string& name, uint64_t from, uint64_t end) {
    uint64_t n = 0;
    for (uint64_t i = from; i < end; ++i) {
      const bool audit = i % 5 == 0;
      if (name == "audit" ? audit : name == "hook" ? !audit && i % 3 == 0 : !audit) ++n;
    }
    return n;
  };
  std::map<std::string, uint64_t> counts;
  uint64_t damaged = 7;
  REQUIRE(CountRouted(t.log.get(), {{"hook", 100}, {"audit", 1}, {"logs", 250}}, 301, &counts,
                      &damaged)
              .ok());
  CHECK(damaged == 0);
  CHECK(counts.at("hook") == expected("hook", 100, 301));
  CHECK(counts.at("audit") == expected("audit", 1, 301));
  CHECK(counts.at("logs") == expected("logs", 250, 301));

  SECTION("up to an end below the log's") {
    REQUIRE(CountRouted(t.log.get(), {{"hook", 100}}, 200, &counts).ok());
    CHECK(counts.at("hook") == expected("hook", 100, 200));
  }
  SECTION("a cursor at the end holds nothing; none asked, none counted") {
    REQUIRE(CountRouted(t.log.get(), {{"hook", 301}}, 301, &counts).ok());
    CHECK(counts.at("hook") == 0);
    REQUIRE(CountRouted(t.log.get(), {}, 301, &counts).ok());
    CHECK(counts.empty());
  }
  SECTION("entries no longer in the log are not counted, and not reported as damage") {
    REQUIRE(t.log->DeleteSegmentsBefore(150) > 0);
    const uint64_t first = t.log->first_lsn();
    REQUIRE(first > 1);
    REQUIRE(CountRouted(t.log.get(), {{"audit", 1}}, 301, &counts, &damaged).ok());
    CHECK(counts.at("audit") == expected("audit", first, 301));
    CHECK(damaged == 0);
  }
}

TEST_CASE("FirstHeld gives the oldest entry a cursor has not processed, with its receipt time",
          "[backlog][log][lag]") {
  TempDir dir;
  TestLog t(dir);
  // lsn i received at i seconds.
  for (int i = 1; i <= 300; ++i) t.Append(Named({i % 2 ? "logs" : "hook"}), i * 1000000LL);
  REQUIRE(t.log->segment_count() > 3);
  EntryHeader h;

  SECTION("from a cursor with its position hint: the entry right there") {
    std::unique_ptr<TailReader> r;
    REQUIRE(t.log->NewReader(Position{1, 0, 0}, nullptr, &r).ok());
    Entry e;
    Status s;
    while (r->Next(&e, &s) == TailReader::Result::kEntry && e.header.lsn < 199) {
    }
    const Position at = r->position();  // past lsn 199
    REQUIRE(at.next_lsn == 200);
    REQUIRE(at.offset > 0);
    REQUIRE(FirstHeld(t.log.get(), at, 301, &h).ok());
    CHECK(h.lsn == 200);
    CHECK(h.recv_us == 200000000);
  }
  SECTION("without a hint: found by lsn, whatever the destination") {
    REQUIRE(FirstHeld(t.log.get(), Position{1, 0, 0}, 301, &h).ok());
    CHECK(h.lsn == 1);
    CHECK(h.recv_us == 1000000);
    REQUIRE(FirstHeld(t.log.get(), Position{250, 0, 0}, 301, &h).ok());
    CHECK(h.recv_us == 250000000);
  }
  SECTION("nothing held at or past the end") {
    CHECK(FirstHeld(t.log.get(), Position{301, 0, 0}, 301, &h).IsNotFound());
    CHECK(FirstHeld(t.log.get(), Position{150, 0, 0}, 150, &h).IsNotFound());
    CHECK(FirstHeld(t.log.get(), Position{400, 0, 0}, 301, &h).IsNotFound());
  }
  SECTION("entries no longer in the log: the oldest that is") {
    REQUIRE(t.log->DeleteSegmentsBefore(150) > 0);
    const uint64_t first = t.log->first_lsn();
    REQUIRE(first > 1);
    REQUIRE(FirstHeld(t.log.get(), Position{1, 0, 0}, 301, &h).ok());
    CHECK(h.lsn == first);
    CHECK(h.recv_us == static_cast<int64_t>(first) * 1000000);
  }
}

}  // namespace forkd::log
