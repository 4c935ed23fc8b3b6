// KeyJournal: records of (key, destination) round-trip, a version 1 journal
// (no header, no destination) is read as "every destination" and converted,
// and a torn or damaged tail ends the journal cleanly.
#include "ingest/key_journal.h"

#include <tuple>

#include "core/crc32c.h"
#include "test_util.h"
#include "wire/protocol.h"

namespace forkd::ingest {
namespace {

using test::TempDir;

struct Rec {
  std::string key;
  std::string dest;
  uint64_t lsn;
  int64_t recv_us;
  bool operator==(const Rec& o) const {
    return std::tie(key, dest, lsn, recv_us) == std::tie(o.key, o.dest, o.lsn, o.recv_us);
  }
};

std::ostream& operator<<(std::ostream& os, const Rec& r) {
  return os << "{" << r.key << ", " << r.dest << ", " << r.lsn << ", " << r.recv_us << "}";
}

// Opens the journal in `dir` and returns what it read.
std::vector<Rec> OpenAndRead(KeyJournal* j, uint64_t* next_lsn) {
  std::vector<Rec> out;
  const Status s = j->Open(
      [&](std::string_view key, std::string_view dest, uint64_t lsn, int64_t recv_us) {
        out.push_back({std::string(key), std::string(dest), lsn, recv_us});
      },
      next_lsn);
  INFO(s.ToString());
  REQUIRE(s.ok());
  return out;
}

std::vector<Rec> ReadAll(const std::string& dir, uint64_t* next_lsn) {
  KeyJournal j(dir);
  return OpenAndRead(&j, next_lsn);
}

// One record of the version 1 layout: crc lsn recv_us len key.
std::string V1Record(std::string_view key, uint64_t lsn, int64_t recv_us) {
  std::string r(4 + 8 + 8 + 2 + key.size(), '\0');
  auto* p = reinterpret_cast<uint8_t*>(r.data());
  wire::PutU64(p + 4, lsn);
  wire::PutU64(p + 12, static_cast<uint64_t>(recv_us));
  p[20] = static_cast<uint8_t>(key.size() & 0xff);
  p[21] = static_cast<uint8_t>(key.size() >> 8);
  std::memcpy(p + 22, key.data(), key.size());
  wire::PutU32(p, crc32c::Mask(crc32c::Value(p + 4, r.size() - 4)));
  return r;
}

const std::string kHeader = std::string("FORKKEY") + '\x02';

TEST_CASE("key journal: (key, destination) records round-trip across a reopen", "[key_journal]") {
  TempDir dir;
  const std::string long_key(300, 'k');
  {
    KeyJournal j(dir.path());
    uint64_t next = 99;
    CHECK(OpenAndRead(&j, &next).empty());
    CHECK(next == 0);
    // A new journal is version 2 from the start.
    CHECK(test::ReadFileOrDie(j.Path()) == kHeader);
    j.Add("order-1", "production", 5, 1000);
    j.Add("order-1", "analytics", 5, 1000);
    j.Add(long_key, "logs", 7, 2000);
    REQUIRE(j.Sync(8).ok());
    j.Add("order-2", std::string(64, 'd'), 9, 3000);
    REQUIRE(j.Sync(12).ok());
    CHECK(j.synced_next_lsn() == 12);
  }
  uint64_t next = 0;
  const std::vector<Rec> got = ReadAll(dir.path(), &next);
  const std::vector<Rec> want = {{"order-1", "production", 5, 1000},
                                 {"order-1", "analytics", 5, 1000},
                                 {long_key, "logs", 7, 2000},
                                 {"order-2", std::string(64, 'd'), 9, 3000}};
  CHECK(got == want);
  CHECK(next == 12);  // the last sync marker
}

TEST_CASE("key journal: Rewrite keeps only what it is given, as version 2", "[key_journal]") {
  TempDir dir;
  {
    KeyJournal j(dir.path());
    uint64_t next = 0;
    OpenAndRead(&j, &next);
    j.Add("a", "x", 1, 10);
    j.Add("b", "x", 2, 20);
    REQUIRE(j.Sync(3).ok());
    REQUIRE(j.Rewrite(
                 [](const KeyJournal::Each& emit) {
                   emit("b", "x", 2, 20);
                   emit("old", "", 1, 5);  // every destination
                 },
                 3)
                .ok());
    CHECK(j.records() == 2);
    j.Add("c", "y", 3, 30);
    REQUIRE(j.Sync(4).ok());
  }
  uint64_t next = 0;
  const std::vector<Rec> want = {{"b", "x", 2, 20}, {"old", "", 1, 5}, {"c", "y", 3, 30}};
  CHECK(ReadAll(dir.path(), &next) == want);
  CHECK(next == 4);
}

TEST_CASE("key journal: a version 1 journal is read as every destination and converted",
          "[key_journal]") {
  TempDir dir;
  const std::string path = dir.Join("keys.journal");
  // Two keys and a sync marker (len 0) saying everything below 40 is in.
  const std::string v1 = V1Record("order-1", 10, 1000) + V1Record("order-2", 20, 2000) +
                         V1Record("", 40, 0);
  test::WriteFileOrDie(path, v1);
  {
    KeyJournal j(dir.path());
    uint64_t next = 0;
    const std::vector<Rec> want = {{"order-1", "", 10, 1000}, {"order-2", "", 20, 2000}};
    CHECK(OpenAndRead(&j, &next) == want);
    CHECK(next == 40);
    // Converted before anything is appended to it.
    CHECK(test::ReadFileOrDie(path).substr(0, kHeader.size()) == kHeader);
    j.Add("order-3", "logs", 41, 3000);
    REQUIRE(j.Sync(42).ok());
  }
  uint64_t next = 0;
  const std::vector<Rec> want = {
      {"order-1", "", 10, 1000}, {"order-2", "", 20, 2000}, {"order-3", "logs", 41, 3000}};
  CHECK(ReadAll(dir.path(), &next) == want);
  CHECK(next == 42);
}

TEST_CASE("key journal: a version 1 journal's torn tail is dropped in the conversion",
          "[key_journal]") {
  TempDir dir;
  const std::string path = dir.Join("keys.journal");
  const std::string last = V1Record("torn", 30, 3000);
  test::WriteFileOrDie(path, V1Record("whole", 10, 1000) + last.substr(0, last.size() - 2));
  uint64_t next = 0;
  const std::vector<Rec> want = {{"whole", "", 10, 1000}};
  CHECK(ReadAll(dir.path(), &next) == want);
  CHECK(next == 11);
  CHECK(ReadAll(dir.path(), &next) == want);
  CHECK(next == 11);
}

TEST_CASE("key journal: a torn tail ends the journal and is cut off before appending",
          "[key_journal]") {
  TempDir dir;
  const std::string path = dir.Join("keys.journal");
  {
    KeyJournal j(dir.path());
    uint64_t next = 0;
    OpenAndRead(&j, &next);
    j.Add("a", "x", 1, 10);
    j.Add("b", "y", 2, 20);
    REQUIRE(j.Sync(3).ok());
    j.Add("c", "z", 3, 30);
    REQUIRE(j.Sync(4).ok());
  }
  const std::string whole = test::ReadFileOrDie(path);
  // Record sizes: 23 fixed bytes + key + destination; each sync adds a 23
  // byte marker. Cut inside the last key record ("c", "z").
  const size_t first_sync_end = kHeader.size() + 2 * (23 + 2) + 23;
  for (const size_t keep : {whole.size() - 23 - 1, first_sync_end + 5, first_sync_end + 23}) {
    INFO("kept " << keep << " of " << whole.size() << " bytes");
    test::WriteFileOrDie(path, whole.substr(0, keep));
    {
      KeyJournal j(dir.path());
      uint64_t next = 0;
      const std::vector<Rec> want = {{"a", "x", 1, 10}, {"b", "y", 2, 20}};
      CHECK(OpenAndRead(&j, &next) == want);
      CHECK(next == 3);
      CHECK(test::FileSizeOf(path) == first_sync_end);
      j.Add("d", "w", 5, 50);
      REQUIRE(j.Sync(6).ok());
    }
    uint64_t next = 0;
    const std::vector<Rec> want = {{"a", "x", 1, 10}, {"b", "y", 2, 20}, {"d", "w", 5, 50}};
    CHECK(ReadAll(dir.path(), &next) == want);
    CHECK(next == 6);
  }
}

TEST_CASE("key journal: a damaged record ends the journal there", "[key_journal]") {
  TempDir dir;
  const std::string path = dir.Join("keys.journal");
  {
    KeyJournal j(dir.path());
    uint64_t next = 0;
    OpenAndRead(&j, &next);
    j.Add("a", "x", 1, 10);
    j.Add("b", "y", 2, 20);
    j.Add("c", "z", 3, 30);
    REQUIRE(j.Sync(4).ok());
  }
  std::string bytes = test::ReadFileOrDie(path);
  // Flip a byte of the second record's destination, and separately claim a
  // destination longer than the file: both end the journal after "a".
  const size_t second = kHeader.size() + 23 + 2;
  for (int variant = 0; variant < 2; ++variant) {
    std::string damaged = bytes;
    if (variant == 0) {
      damaged[second + 23 + 1] ^= 0x20;
    } else {
      damaged[second + 22] = static_cast<char>(0xff);
    }
    test::WriteFileOrDie(path, damaged);
    uint64_t next = 0;
    const std::vector<Rec> want = {{"a", "x", 1, 10}};
    CHECK(ReadAll(dir.path(), &next) == want);
    CHECK(next == 2);
  }
}

TEST_CASE("key journal: a newer version is an error naming the file, and left alone",
          "[key_journal]") {
  TempDir dir;
  const std::string path = dir.Join("keys.journal");
  const std::string newer = std::string("FORKKEY") + '\x03' + "whatever follows";
  test::WriteFileOrDie(path, newer);
  KeyJournal j(dir.path());
  uint64_t next = 0;
  const Status s = j.Open([](std::string_view, std::string_view, uint64_t, int64_t) {}, &next);
  CHECK_FALSE(s.ok());
  CHECK_THAT(s.message(), Catch::Matchers::Contains("keys.journal") &&
                              Catch::Matchers::Contains("version 3"));
  CHECK(test::ReadFileOrDie(path) == newer);
}

}  // namespace
}  // namespace forkd::ingest

namespace forkd::ingest {

TEST_CASE("key journal: Find reads the newest record of a key without opening the journal",
          "[key_journal]") {
  TempDir dir;
  uint64_t lsn = 0;
  int64_t recv_us = 0;
  CHECK(KeyJournal::Find(dir.path(), "order-1", &lsn, &recv_us).IsNotFound());  // no file
  {
    KeyJournal j(dir.path());
    uint64_t next = 0;
    OpenAndRead(&j, &next);
    j.Add("order-1", "production", 5, 1000);
    j.Add("order-1", "analytics", 5, 1000);
    j.Add("order-2", "production", 6, 2000);
    j.Add("order-1", "production", 9, 3000);  // the same key again, later
    REQUIRE(j.Sync(10).ok());
    // Still open for appending: Find only reads.
    REQUIRE(KeyJournal::Find(dir.path(), "order-1", &lsn, &recv_us).ok());
    CHECK(lsn == 9);
    CHECK(recv_us == 3000);
    REQUIRE(KeyJournal::Find(dir.path(), "order-2", &lsn, &recv_us).ok());
    CHECK(lsn == 6);
    CHECK(KeyJournal::Find(dir.path(), "order-3", &lsn, &recv_us).IsNotFound());
    CHECK(KeyJournal::Find(dir.path(), "order-", &lsn, &recv_us).IsNotFound());  // a prefix
  }
  // A torn tail ends it: what came before is still found.
  const std::string path = dir.Join("keys.journal");
  const std::string bytes = test::ReadFileOrDie(path);
  test::WriteFileOrDie(path, bytes + std::string("\x01\x02\x03", 3));
  REQUIRE(KeyJournal::Find(dir.path(), "order-2", &lsn, &recv_us).ok());
  CHECK(lsn == 6);
}

}  // namespace forkd::ingest
