// The event index: hash -> lsn slots that survive growth, collisions and
// pruning; and the indexer over a real log, which confirms every candidate
// by reading its entry, reads entries back across segments, and tells a
// receipt id retention deleted from one never seen.
#include "log/event_index.h"

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <atomic>
#include <random>
#include <thread>

#include "log/event_indexer.h"
#include "test_util.h"
#include "wire/codec.h"

namespace forkd::log {
namespace {

using test::TempDir;

std::vector<uint64_t> FindAll(const EventIndex& idx, uint64_t hash) {
  std::vector<uint64_t> v;
  idx.Find(hash, &v);
  std::sort(v.begin(), v.end());
  return v;
}

// A stored event to "a", with key `key` (none when empty).
std::string Event(const std::string& key) {
  return test::Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.Str("a");
    if (key.empty()) {
      w.Nil();
    } else {
      w.Str(key);
    }
    w.Nil();
    w.MapHeader(1);
    w.Str("pad");
    w.Str(std::string(100, 'x'));
  });
}

struct TestLog {
  explicit TestLog(const TempDir& dir, uint64_t segment_bytes = 4096) {
    o.dir = dir.Join("wal");
    o.segment_bytes = segment_bytes;
    RecoveryInfo info;
    REQUIRE(Log::Open(o, &log, &info).ok());
  }
  // Closes the log and opens it again, as a restarted forkd does.
  void Reopen() {
    log.reset();
    RecoveryInfo info;
    REQUIRE(Log::Open(o, &log, &info).ok());
  }
  LogOptions o;
  // Appends and commits one entry; returns its lsn.
  uint64_t Add(const uint8_t* client, uint64_t seq, const std::string& key) {
    return AddRaw(client, seq, Event(key));
  }
  // The same with the event's bytes as given.
  uint64_t AddRaw(const uint8_t* client, uint64_t seq, const std::string& e) {
    const uint64_t lsn = log->Append(1700000000000000 + static_cast<int64_t>(seq), client, seq,
                                     test::U8(e), e.size());
    uint64_t gen;
    REQUIRE(log->StartCommit(&gen));
    pollfd p{log->completion_fd(), POLLIN, 0};
    REQUIRE(::poll(&p, 1, 10000) == 1);
    CommitResult r, pf;
    REQUIRE(log->TakeCompletion(&r, &pf));
    REQUIRE(r.status.ok());
    return lsn;
  }
  std::unique_ptr<Log> log;
};

std::string IdOf(const uint8_t* client, uint64_t seq) { return wire::FormatEventId(client, seq); }

size_t CatchUpAll(EventIndexer& ix) {
  size_t total = 0, n = 0;
  do {
    REQUIRE(ix.CatchUp(1000, &n).ok());
    total += n;
  } while (n > 0);
  return total;
}

}  // namespace

TEST_CASE("EventIndex finds each inserted lsn by its hash, through growth of every shard",
          "[event_index][log]") {
  EventIndex idx;
  std::mt19937_64 rng(7);
  std::vector<uint64_t> hashes;
  for (uint64_t lsn = 1; lsn <= 200000; ++lsn) {
    hashes.push_back(rng());
    idx.Insert(hashes.back(), lsn);
  }
  for (uint64_t lsn = 1; lsn <= 200000; lsn += 997) {
    CHECK(FindAll(idx, hashes[lsn - 1]) == std::vector<uint64_t>{lsn});
  }
  CHECK(idx.entries() == 200000);
  CHECK(FindAll(idx, rng()).empty());
  // 8-byte slots, at most 3/4 and (after a doubling) at least 3/8 full.
  const double per = static_cast<double>(idx.memory_bytes()) / 200000.0;
  CHECK(per >= 8 * 4 / 3.0 - 0.1);
  CHECK(per <= 8 * 8 / 3.0 + 2);
}

TEST_CASE("EventIndex returns every lsn whose hash collides in the 32 bits it keeps",
          "[event_index][log]") {
  EventIndex idx;
  const uint64_t h = 0x1234567890abcdefull;
  idx.Insert(h, 10);
  idx.Insert(h, 11);                  // the same id twice (a replayed dead letter)
  idx.Insert(h ^ 0xffffffffull, 12);  // differs only in the low 32 bits: a candidate too
  idx.Insert(h ^ (1ull << 40), 13);   // differs in the tag: not
  idx.Insert(h ^ (1ull << 63), 14);   // differs in the shard: not
  CHECK(FindAll(idx, h) == std::vector<uint64_t>{10, 11, 12});
}

TEST_CASE("EventIndex forgets entries below the pruned floor, reuses their slots, and shrinks",
          "[event_index][log]") {
  EventIndex idx;
  std::mt19937_64 rng(11);
  std::vector<uint64_t> hashes;
  for (uint64_t lsn = 1; lsn <= 100000; ++lsn) {
    hashes.push_back(rng());
    idx.Insert(hashes.back(), lsn);
  }
  const size_t full = idx.memory_bytes();
  idx.Prune(90001);
  CHECK(FindAll(idx, hashes[0]).empty());
  CHECK(FindAll(idx, hashes[90000 - 1]).empty());
  CHECK(FindAll(idx, hashes[90001 - 1]) == std::vector<uint64_t>{90001});
  // New entries take the dead slots; rehashes keep only the live ones.
  for (uint64_t lsn = 100001; lsn <= 400000; ++lsn) {
    hashes.push_back(rng());
    idx.Insert(hashes.back(), lsn);
    if (lsn % 10000 == 0) idx.Prune(lsn - 10000);
  }
  CHECK(FindAll(idx, hashes[400000 - 1]) == std::vector<uint64_t>{400000});
  CHECK(FindAll(idx, hashes[390001 - 1]) == std::vector<uint64_t>{390001});
  CHECK(FindAll(idx, hashes[300000 - 1]).empty());
  CHECK(idx.memory_bytes() < full);
}

TEST_CASE("EventIndex answers readers on other threads while its writer inserts, grows and prunes",
          "[event_index][log]") {
  EventIndex idx;
  constexpr uint64_t kN = 400000;
  constexpr uint64_t kKeep = 50000;  // the writer prunes all but the last kKeep
  std::vector<uint64_t> hashes(kN);
  std::mt19937_64 rng(13);
  for (auto& h : hashes) h = rng();
  std::atomic<uint64_t> published{0};  // lsns below are inserted
  std::atomic<bool> done{false};
  std::atomic<uint64_t> misses{0}, wrong{0}, reads{0};
  auto reader = [&](uint64_t seed) {
    std::mt19937_64 pick(seed);
    std::vector<uint64_t> found;
    while (!done.load()) {
      const uint64_t top = published.load();
      if (top <= kKeep + 1) continue;
      // Within the last kKeep / 2 inserted: never pruned while we look.
      const uint64_t lsn = top - 1 - pick() % (kKeep / 2);
      found.clear();
      idx.Find(hashes[lsn - 1], &found);
      // Descheduled long enough for the writer to prune past it: no answer due.
      if (idx.floor() > lsn) continue;
      if (std::count(found.begin(), found.end(), lsn) != 1) misses.fetch_add(1);
      // Another lsn only when it shares the 32 bits kept (the tag's lowest
      // bit is forced to 1).
      for (uint64_t f : found) {
        if (f != lsn && (hashes[f - 1] >> 32 | 1) != (hashes[lsn - 1] >> 32 | 1)) {
          wrong.fetch_add(1);
        }
      }
      reads.fetch_add(1);
    }
  };
  std::thread r1(reader, 1), r2(reader, 2);
  for (uint64_t lsn = 1; lsn <= kN; ++lsn) {
    idx.Insert(hashes[lsn - 1], lsn);
    published.store(lsn + 1);
    if (lsn % 1000 == 0 && lsn > kKeep) idx.Prune(lsn - kKeep);
  }
  done.store(true);
  r1.join();
  r2.join();
  CHECK(reads.load() > 0);
  CHECK(misses.load() == 0);
  CHECK(wrong.load() == 0);
}

TEST_CASE("EventIndex reads lsns past 2^40 back exactly (kept modulo 2^40)", "[event_index][log]") {
  EventIndex idx;
  const uint64_t base = (uint64_t{1} << 40) - 3;
  idx.Prune(base);
  for (uint64_t i = 0; i < 6; ++i) idx.Insert(0xabcdef0000000000ull + (i << 33), base + i);
  for (uint64_t i = 0; i < 6; ++i) {
    CHECK(FindAll(idx, 0xabcdef0000000000ull + (i << 33)) == std::vector<uint64_t>{base + i});
  }
}

TEST_CASE("EventIndex looks up one of 10M ids in well under a millisecond (timing printed)",
          "[event_index][log]") {
  EventIndex idx;
  constexpr uint64_t kN = 10000000;
  std::mt19937_64 rng(3);
  const auto t0 = std::chrono::steady_clock::now();
  for (uint64_t lsn = 1; lsn <= kN; ++lsn) idx.Insert(rng(), lsn);
  const auto t1 = std::chrono::steady_clock::now();
  rng.seed(3);
  std::vector<uint64_t> hashes(kN);
  for (auto& h : hashes) h = rng();
  std::vector<uint64_t> found;
  constexpr int kLookups = 1000000;
  std::mt19937_64 pick(5);
  const auto t2 = std::chrono::steady_clock::now();
  size_t hits = 0;
  for (int i = 0; i < kLookups; ++i) {
    found.clear();
    const uint64_t lsn = pick() % kN + 1;
    idx.Find(hashes[lsn - 1], &found);
    hits += std::count(found.begin(), found.end(), lsn);
  }
  const auto t3 = std::chrono::steady_clock::now();
  CHECK(hits == kLookups);
  const double insert_ns = std::chrono::duration<double, std::nano>(t1 - t0).count() / kN;
  const double lookup_ns = std::chrono::duration<double, std::nano>(t3 - t2).count() / kLookups;
  std::printf("event index, 10M ids: insert %.0f ns, lookup %.0f ns, %.1f bytes per id (%.0f MiB)"
              "\n",
              insert_ns, lookup_ns, static_cast<double>(idx.memory_bytes()) / kN,
              static_cast<double>(idx.memory_bytes()) / (1 << 20));
  CHECK(lookup_ns < 100000);  // a loose bound: the target is 1 ms with the log read
}

TEST_CASE("EventIndexer indexes a log's entries by receipt id and key and reads them back across "
          "segments",
          "[event_index][log]") {
  TempDir dir;
  TestLog t(dir);
  const uint8_t client[16] = {0xab, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  for (uint64_t seq = 1; seq <= 300; ++seq) t.Add(client, seq, seq == 150 ? "order-150" : "");
  REQUIRE(t.log->segment_count() > 5);
  EventIndexer ix(t.log.get());
  CHECK(CatchUpAll(ix) == 300);  // the scan at start
  CHECK(ix.indexed_next_lsn() == 301);
  std::vector<FoundEntry> f;
  REQUIRE(ix.Find(IdOf(client, 299), &f).ok());
  REQUIRE(f.size() == 1);
  CHECK(f[0].header.lsn == 299);
  CHECK(f[0].header.seq == 299);
  REQUIRE(ix.Find("order-150", &f).ok());
  REQUIRE(f.size() == 1);
  CHECK(f[0].header.lsn == 150);
  // An entry with a key is found by its key, as its receipt says.
  REQUIRE(ix.Find(IdOf(client, 150), &f).ok());
  CHECK(f.empty());
  // Appended later: indexed by the next catch-up.
  t.Add(client, 301, "");
  REQUIRE(ix.Find(IdOf(client, 301), &f).ok());
  CHECK(f.empty());
  CHECK(CatchUpAll(ix) == 1);
  REQUIRE(ix.Find(IdOf(client, 301), &f).ok());
  REQUIRE(f.size() == 1);
  CHECK(f[0].header.lsn == 301);
  for (uint64_t lsn : {1ull, 63ull, 64ull, 65ull, 128ull, 300ull}) {
    FoundEntry e;
    REQUIRE(ix.ReadAt(lsn, &e).ok());
    CHECK(e.header.lsn == lsn);
  }

  // Catching up a few entries at a time (fewer than the inserts trail the
  // reads by): every step leaves what it read indexed and findable.
  EventIndexer steps(t.log.get());
  size_t n = 0, total = 0;
  do {
    REQUIRE(steps.CatchUp(3, &n).ok());
    total += n;
    CHECK(steps.indexed_next_lsn() == 1 + total);
    if (n > 0) {
      const uint64_t last = total;  // lsns are 1.. in order; seq == lsn
      REQUIRE(steps.Find(last == 150 ? "order-150" : IdOf(client, last), &f).ok());
      REQUIRE(f.size() == 1);
      CHECK(f[0].header.lsn == last);
    }
  } while (n > 0);
  CHECK(total == 301);
}

TEST_CASE("EventIndexer finds receipt ids of interleaved clients and of resent events by their "
          "client's marks, and a key shaped like a receipt id by its hash",
          "[event_index][log]") {
  TempDir dir;
  TestLog t(dir);
  const uint8_t busy[16] = {0x11}, rare[16] = {0x22}, resent[16] = {0x33};
  std::map<std::string, std::vector<uint64_t>> where;  // id -> lsns
  uint64_t busy_seq = 0, rare_seq = 0;
  for (int i = 0; i < 700; ++i) {
    if (i % 50 == 7) {
      ++rare_seq;
      where[IdOf(rare, rare_seq)].push_back(t.Add(rare, rare_seq, ""));
    } else {
      ++busy_seq;
      where[IdOf(busy, busy_seq)].push_back(t.Add(busy, busy_seq, ""));
    }
    if (i == 300) {  // a client that sends 1..30, then 20..40 again after a reconnect
      for (uint64_t seq = 1; seq <= 30; ++seq) where[IdOf(resent, seq)].push_back(t.Add(resent, seq, ""));
      for (uint64_t seq = 20; seq <= 40; ++seq) where[IdOf(resent, seq)].push_back(t.Add(resent, seq, ""));
    }
  }
  // A key with a receipt id's form, of another client's seq.
  const std::string lookalike = IdOf(rare, 9999);
  where[lookalike].push_back(t.Add(busy, busy_seq + 1, lookalike));
  REQUIRE(t.log->segment_count() > 10);
  EventIndexer ix(t.log.get());
  const size_t total = CatchUpAll(ix);
  CHECK(ix.entries() == total);
  CHECK(ix.index().entries() == 1);  // only the key has a slot
  CHECK(ix.receipts().marks() < 100);
  std::vector<FoundEntry> f;
  for (const auto& [id, lsns] : where) {
    CAPTURE(id);
    REQUIRE(ix.Find(id, &f).ok());
    std::vector<uint64_t> got;
    for (const FoundEntry& e : f) got.push_back(e.header.lsn);
    CHECK(got == lsns);
  }
  CHECK(where[IdOf(resent, 25)].size() == 2);
  // The busy client's next seq was taken by the lookalike's entry, under
  // its key: its receipt id finds nothing.
  REQUIRE(ix.Find(IdOf(busy, busy_seq + 1), &f).ok());
  CHECK(f.empty());
  REQUIRE(ix.Find(IdOf(rare, rare_seq + 1), &f).ok());
  CHECK(f.empty());
}

TEST_CASE("EventIndexer reads only ids: entries malformed past their key, or before it, are "
          "never found, and the entries around them are",
          "[event_index][log]") {
  TempDir dir;
  TestLog t(dir);
  const uint8_t client[16] = {4};
  std::string cut = Event("");
  cut.pop_back();  // the payload's string one byte short
  std::string bad_key = Event("");
  bad_key[4] = static_cast<char>(0xc1);  // the key: a type byte msgpack never uses
  std::string not_event = Event("");
  not_event[0] = static_cast<char>(0x93);  // an array of 3
  for (uint64_t seq = 1; seq <= 40; ++seq) {
    t.AddRaw(client, seq, seq == 10 ? cut : seq == 20 ? bad_key : seq == 30 ? not_event : Event(""));
  }
  // Readers check the events of entries written before the log was opened
  // (what this process appends, ingest checked): read them as the next
  // forkd would.
  t.Reopen();
  EventIndexer ix(t.log.get());
  CHECK(CatchUpAll(ix) == 40);
  CHECK(ix.indexed_next_lsn() == 41);
  std::vector<FoundEntry> f;
  for (uint64_t seq = 1; seq <= 40; ++seq) {
    CAPTURE(seq);
    REQUIRE(ix.Find(IdOf(client, seq), &f).ok());
    CHECK(f.size() == (seq == 10 || seq == 20 || seq == 30 ? 0u : 1u));
  }
  // Seq 10 was indexed (its key is whole, nil), and its lookup read it back
  // through a checking reader, which skipped it.
  std::vector<ReceiptIndex::Range> ranges;
  ReceiptIndex::ClientId id{};
  std::copy(client, client + 16, id.begin());
  ix.receipts().Candidates(id, 10, ix.indexed_next_lsn(), &ranges);
  REQUIRE(ranges.size() == 1);
  CHECK(ranges[0].from <= 10);
  CHECK(ranges[0].to > 10);
}

TEST_CASE("EventIndexer never answers with a colliding entry: every candidate is read and compared",
          "[event_index][log]") {
  TempDir dir;
  TestLog t(dir);
  const uint8_t client[16] = {1};
  for (uint64_t seq = 1; seq <= 100; ++seq) t.Add(client, seq, "key-" + std::to_string(seq));
  // Every key hashes alike: each lookup reads all 100 candidates.
  EventIndexer ix(t.log.get(), [](std::string_view) -> uint64_t { return 42; });
  CatchUpAll(ix);
  CHECK(ix.index().entries() == 100);
  std::vector<FoundEntry> f;
  REQUIRE(ix.Find("key-57", &f).ok());
  REQUIRE(f.size() == 1);
  CHECK(f[0].header.lsn == 57);
  REQUIRE(ix.Find("key-101", &f).ok());
  CHECK(f.empty());
}

TEST_CASE("EventIndexer forgets deleted segments and says which receipt ids expired",
          "[event_index][log]") {
  TempDir dir;
  TestLog t(dir);
  const uint8_t client[16] = {2};
  const uint8_t other[16] = {3};
  for (uint64_t seq = 1; seq <= 200; ++seq) t.Add(client, seq, seq == 5 ? "old-key" : "");
  EventIndexer ix(t.log.get());
  CatchUpAll(ix);
  REQUIRE(t.log->DeleteSegmentsBefore(120) > 0);
  const uint64_t first = t.log->first_lsn();
  REQUIRE(first > 1);
  REQUIRE(first <= 120);
  CatchUpAll(ix);  // notices the deletion
  std::vector<FoundEntry> f;
  REQUIRE(ix.Find(IdOf(client, 1), &f).ok());
  CHECK(f.empty());
  REQUIRE(ix.Find("old-key", &f).ok());
  CHECK(f.empty());
  CHECK(ix.Expired(IdOf(client, 1)));
  CHECK(ix.Expired(IdOf(client, first - 1)));
  CHECK_FALSE(ix.Expired(IdOf(client, first)));  // retained: found instead
  REQUIRE(ix.Find(IdOf(client, first), &f).ok());
  CHECK(f.size() == 1);
  CHECK_FALSE(ix.Expired(IdOf(other, 1)));    // a client never seen
  CHECK_FALSE(ix.Expired("not-a-receipt-id"));
  FoundEntry e;
  CHECK(ix.ReadAt(first - 1, &e).IsNotFound());
}

}  // namespace forkd::log
