// Cursor files: the encoding round-trips, any damage is Corruption (never a
// wrong position), and Save replaces the file atomically.
#include "log/cursors.h"

#include <poll.h>

#include <cerrno>

#include "core/crc32c.h"
#include "core/fs.h"
#include "test_util.h"

namespace forkd::log {
namespace {

using test::FaultGuard;
using test::TempDir;

Cursor MakeCursor(uint64_t next_lsn, uint64_t segment, uint64_t offset, std::string state) {
  Cursor c;
  c.position = Position{next_lsn, segment, offset};
  c.sink_state = std::move(state);
  return c;
}

void CheckSame(const Cursor& a, const Cursor& b) {
  CHECK(a.position.next_lsn == b.position.next_lsn);
  CHECK(a.position.segment == b.position.segment);
  CHECK(a.position.offset == b.position.offset);
  CHECK(a.sink_state == b.sink_state);
}

}  // namespace

TEST_CASE("a cursor encodes and decodes to itself", "[cursors]") {
  const std::vector<Cursor> cursors = {
      MakeCursor(1, 0, 0, ""),
      MakeCursor(12345, 12001, 65536 + 77, "/data/out/events.jsonl\n1024\n1700000000000000\n"),
      MakeCursor(UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 2, std::string("\0\xff\n\x1f", 4)),
      MakeCursor(7, 1, 40, test::Rng(3).Bytes(100000)),
  };
  for (const Cursor& c : cursors) {
    const std::string bytes = CursorStore::Encode(c);
    CHECK(bytes.size() == 4 + 4 + 8 * 3 + 4 + c.sink_state.size() + 4);
    CHECK(bytes.substr(0, 4) == "FKCR");
    Cursor out;
    Status s = CursorStore::Decode(bytes, &out);
    INFO(s.ToString());
    REQUIRE(s.ok());
    CheckSame(out, c);
  }
}

TEST_CASE("a damaged cursor is Corruption, never a wrong position", "[cursors]") {
  const Cursor c = MakeCursor(4242, 4001, 999,
                              "path\n12\n34\na\x1f"
                              "b");
  const std::string good = CursorStore::Encode(c);

  SECTION("every truncation") {
    for (size_t n = 0; n < good.size(); ++n) {
      INFO("cut to " << n << " bytes");
      Cursor out;
      const Status s = CursorStore::Decode(good.substr(0, n), &out);
      CHECK(s.code() == Status::Code::kCorruption);
      CHECK_FALSE(s.message().empty());
    }
  }
  SECTION("every single-bit flip") {
    for (size_t i = 0; i < good.size(); ++i) {
      for (int bit = 0; bit < 8; ++bit) {
        std::string bad = good;
        bad[i] = static_cast<char>(bad[i] ^ (1 << bit));
        Cursor out;
        const Status s = CursorStore::Decode(bad, &out);
        INFO("bit " << bit << " of byte " << i << ": " << s.ToString());
        CHECK(s.code() == Status::Code::kCorruption);
      }
    }
  }
  SECTION("bytes after the checksum") {
    Cursor out;
    CHECK(CursorStore::Decode(good + "x", &out).code() == Status::Code::kCorruption);
  }
  SECTION("a state length that lies") {
    // Claims 2^32-1 bytes of state: rejected by length, nothing allocated.
    std::string bad = good;
    wire::PutU32(reinterpret_cast<uint8_t*>(bad.data()) + 32, UINT32_MAX);
    Cursor out;
    const Status s = CursorStore::Decode(bad, &out);
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK(s.message() == "cursor length mismatch");
  }
  SECTION("the messages say what is wrong") {
    Cursor out;
    CHECK(CursorStore::Decode("", &out).message() == "not a cursor file");
    std::string magic = good;
    magic[0] = 'X';
    CHECK(CursorStore::Decode(magic, &out).message() == "not a cursor file");
    // A newer version with a valid checksum is refused by its version.
    std::string v2 = good;
    auto* p = reinterpret_cast<uint8_t*>(v2.data());
    wire::PutU32(p + 4, 2);
    const size_t body = v2.size() - 4;
    wire::PutU32(p + body, crc32c::Mask(crc32c::Value(p, body)));
    CHECK(CursorStore::Decode(v2, &out).message() == "cursor version 2");
    std::string crc = good;
    crc[40] ^= 1;
    CHECK(CursorStore::Decode(crc, &out).message() == "cursor checksum");
  }
}

TEST_CASE("CursorStore saves and loads cursors by destination", "[cursors]") {
  FaultGuard guard;
  TempDir dir;
  CursorStore store(dir.Join("data/cursors"));
  REQUIRE(store.Init().ok());
  CHECK(store.PathFor("logs") == dir.Join("data/cursors/logs.cursor"));

  Cursor out;
  const Status missing = store.Load("logs", &out);
  CHECK(missing.IsNotFound());

  const Cursor a = MakeCursor(10, 1, 500, "state a");
  const Cursor b = MakeCursor(20, 15, 80, "state b");
  REQUIRE(store.Save("logs", a).ok());
  REQUIRE(store.Save("audit", b).ok());
  REQUIRE(store.Load("logs", &out).ok());
  CheckSame(out, a);
  REQUIRE(store.Load("audit", &out).ok());
  CheckSame(out, b);

  // Saving again replaces the file; no temp file is left behind.
  const Cursor a2 = MakeCursor(11, 1, 600, "");
  REQUIRE(store.Save("logs", a2).ok());
  REQUIRE(store.Load("logs", &out).ok());
  CheckSame(out, a2);
  CHECK(test::ListDir(dir.Join("data/cursors")) ==
        std::vector<std::string>{"audit.cursor", "logs.cursor"});

  SECTION("a corrupted file loads as Corruption naming the file") {
    std::string bytes = test::ReadFileOrDie(store.PathFor("logs"));
    bytes[10] ^= 4;
    test::WriteFileOrDie(store.PathFor("logs"), bytes);
    const Status s = store.Load("logs", &out);
    CHECK(s.code() == Status::Code::kCorruption);
    CHECK_THAT(s.message(), Catch::StartsWith(store.PathFor("logs") + ": "));
    CHECK_THAT(s.message(), Catch::EndsWith("cursor checksum"));
  }
  SECTION("an empty file is Corruption") {
    test::WriteFileOrDie(store.PathFor("logs"), "");
    CHECK(store.Load("logs", &out).code() == Status::Code::kCorruption);
  }
  SECTION("a save that fails leaves the previous cursor in place") {
    for (const char* kind : {"write", "fsync", "rename"}) {
      INFO(kind);
      fs::InjectFault(kind, 1, ENOSPC, false);
      const Status s = store.Save("logs", MakeCursor(99, 90, 1, "never"));
      CHECK_FALSE(s.ok());
      CHECK_THAT(s.message(), Catch::Contains("no space left on device"));
      fs::ClearFaults();
      REQUIRE(store.Load("logs", &out).ok());
      CheckSame(out, a2);
      CHECK_FALSE(test::FileExists(store.PathFor("logs") + ".tmp"));
    }
  }
}

TEST_CASE("a backfill's end is kept beside the cursor; anything unreadable is none", "[cursors]") {
  TempDir dir;
  CursorStore store(dir.Join("cursors"));
  REQUIRE(store.Init().ok());
  CHECK(store.LoadBackfill("orders") == 0);
  REQUIRE(store.SaveBackfill("orders", 18446744073709551615ull).ok());
  CHECK(store.LoadBackfill("orders") == 18446744073709551615ull);
  REQUIRE(store.SaveBackfill("orders", 1234).ok());
  CHECK(store.LoadBackfill("orders") == 1234);
  CHECK(store.LoadBackfill("logs") == 0);
  for (const char* bad : {"12x4\n", "-5\n", "99999999999999999999999\n"}) {
    INFO(bad);
    test::WriteFileOrDie(dir.Join("cursors/orders.backfill"), bad);
    CHECK(store.LoadBackfill("orders") == 0);
  }
}

TEST_CASE("List names the destinations with a cursor; Remove deletes cursor and backfill", "[cursors]") {
  TempDir dir;
  CursorStore store(dir.Join("cursors"));
  std::vector<std::string> names = {"stale"};
  CHECK(store.List(&names).IsNotFound());
  REQUIRE(store.Init().ok());
  REQUIRE(store.List(&names).ok());
  CHECK(names.empty());

  REQUIRE(store.Save("orders", MakeCursor(5, 1, 40, "")).ok());
  REQUIRE(store.Save("audit", MakeCursor(9, 1, 80, "")).ok());
  REQUIRE(store.SaveBackfill("orders", 3).ok());
  // Neither a temp file left by a crash nor a backfill file is a cursor.
  test::WriteFileOrDie(dir.Join("cursors/logs.cursor.tmp"), "half");
  test::WriteFileOrDie(dir.Join("cursors/.cursor"), "");
  REQUIRE(store.List(&names).ok());
  CHECK(names == std::vector<std::string>{"audit", "orders"});

  REQUIRE(store.Remove("orders").ok());
  Cursor out;
  CHECK(store.Load("orders", &out).IsNotFound());
  CHECK(store.LoadBackfill("orders") == 0);
  CHECK_FALSE(test::FileExists(dir.Join("cursors/orders.backfill")));
  REQUIRE(store.List(&names).ok());
  CHECK(names == std::vector<std::string>{"audit"});
  // Removing what is not there is not an error; the others stay.
  REQUIRE(store.Remove("orders").ok());
  REQUIRE(store.Remove("never").ok());
  REQUIRE(store.Load("audit", &out).ok());
  CheckSame(out, MakeCursor(9, 1, 80, ""));
}

TEST_CASE("a saved cursor's position resumes a log reader where it stopped", "[cursors][log]") {
  TempDir dir;
  LogOptions o;
  o.dir = dir.Join("wal");
  o.segment_bytes = 4096;
  o.check_events = false;  // its entries are arbitrary bytes
  std::unique_ptr<Log> log;
  RecoveryInfo info;
  REQUIRE(Log::Open(o, &log, &info).ok());
  const uint8_t client[16] = {};
  const std::string event(1000, 'e');
  auto commit = [&] {
    uint64_t gen;
    REQUIRE(log->StartCommit(&gen));
    pollfd p{log->completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    CommitResult r, pf;
    REQUIRE(log->TakeCompletion(&r, &pf));
    REQUIRE(r.status.ok());
  };
  for (uint64_t i = 1; i <= 12; ++i) {
    log->Append(0, client, i, test::U8(event), event.size());
    if (i % 3 == 0) commit();
  }
  std::unique_ptr<TailReader> r;
  REQUIRE(log->NewReader(Position{}, nullptr, &r).ok());
  Entry e;
  Status io;
  for (int i = 0; i < 7; ++i) REQUIRE(r->Next(&e, &io) == TailReader::Result::kEntry);

  CursorStore store(dir.Join("cursors"));
  REQUIRE(store.Init().ok());
  REQUIRE(store.Save("logs", Cursor{r->position(), "s"}).ok());
  Cursor loaded;
  REQUIRE(store.Load("logs", &loaded).ok());
  CHECK(loaded.position.next_lsn == 8);
  CHECK(loaded.position.segment == r->position().segment);
  CHECK(loaded.position.offset == r->position().offset);

  std::unique_ptr<TailReader> resumed;
  REQUIRE(log->NewReader(loaded.position, nullptr, &resumed).ok());
  for (uint64_t lsn = 8; lsn <= 12; ++lsn) {
    REQUIRE(resumed->Next(&e, &io) == TailReader::Result::kEntry);
    CHECK(e.header.lsn == lsn);
    CHECK(e.header.seq == lsn);
  }
  CHECK(resumed->Next(&e, &io) == TailReader::Result::kEnd);
}

}  // namespace forkd::log
