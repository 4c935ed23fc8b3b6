// The receipt index alone: sparse marks per client whose ranges always hold
// the entry asked for, stay within kMaxGap lsns, survive clients that send
// again (seqs falling back) and interleave, and are forgotten with the log.
#include "log/receipt_index.h"

#include <algorithm>
#include <cstring>
#include <map>
#include <random>
#include <vector>

#include "test_util.h"

namespace forkd::log {
namespace {

using Range = ReceiptIndex::Range;

ReceiptIndex::ClientId Client(uint8_t n) {
  ReceiptIndex::ClientId c{};
  c[0] = n;
  c[15] = static_cast<uint8_t>(0xff - n);
  return c;
}

std::vector<Range> Ranges(const ReceiptIndex& ix, const ReceiptIndex::ClientId& c, uint64_t seq,
                          uint64_t limit) {
  std::vector<Range> r;
  ix.Candidates(c, seq, limit, &r);
  return r;
}

bool Covers(const std::vector<Range>& rs, uint64_t lsn) {
  return std::any_of(rs.begin(), rs.end(), [&](const Range& r) { return r.from <= lsn && lsn < r.to; });
}

}  // namespace

TEST_CASE("ReceiptIndex marks a client writing alone every 64 entries: each seq in one range of "
          "at most 64 lsns",
          "[receipt_index][log]") {
  ReceiptIndex ix;
  const auto a = Client(1);
  for (uint64_t seq = 1; seq <= 10000; ++seq) ix.Add(a.data(), seq, seq);
  CHECK(ix.marks() == (10000 + 63) / 64);
  // A quarter of a byte an event, plus the client's fixed cost.
  CHECK(ix.memory_bytes() < 10000 / 4 + 2048);
  for (uint64_t seq = 1; seq <= 10000; ++seq) {
    CAPTURE(seq);
    const auto rs = Ranges(ix, a, seq, 10001);
    REQUIRE(rs.size() == 1);
    CHECK(Covers(rs, seq));
    CHECK(rs[0].to - rs[0].from <= ReceiptIndex::kEvery);
  }
  CHECK(Ranges(ix, a, 0, 10001).empty());        // below its first seq
  CHECK(Ranges(ix, Client(2), 5, 10001).empty());  // a client never seen
  // Past the last entry added, a range ends at the limit.
  const auto last = Ranges(ix, a, 10005, 10001);
  REQUIRE(last.size() == 1);
  CHECK(last[0].to == 10001);
}

TEST_CASE("ReceiptIndex marks a rare client among busy ones at least every kMaxGap lsns",
          "[receipt_index][log]") {
  ReceiptIndex ix;
  const auto busy = Client(1), rare = Client(2);
  std::map<uint64_t, uint64_t> rare_lsn;  // seq -> lsn
  uint64_t lsn = 0, busy_seq = 0, rare_seq = 0;
  for (int i = 0; i < 20000; ++i) {
    ++lsn;
    if (i % 700 == 0) {
      ix.Add(rare.data(), ++rare_seq, lsn);
      rare_lsn[rare_seq] = lsn;
    } else {
      ix.Add(busy.data(), ++busy_seq, lsn);
    }
  }
  for (const auto& [seq, at] : rare_lsn) {
    CAPTURE(seq);
    const auto rs = Ranges(ix, rare, seq, lsn + 1);
    REQUIRE(rs.size() == 1);
    CHECK(Covers(rs, at));
    CHECK(rs[0].to - rs[0].from <= ReceiptIndex::kMaxGap);
  }
  for (uint64_t seq = 1; seq <= busy_seq; seq += 97) {
    const auto rs = Ranges(ix, busy, seq, lsn + 1);
    REQUIRE(rs.size() == 1);
    CHECK(rs[0].to - rs[0].from <= ReceiptIndex::kMaxGap);
  }
}

TEST_CASE("ReceiptIndex gives a range per run when a client's seqs fall back (sent again)",
          "[receipt_index][log]") {
  ReceiptIndex ix;
  const auto a = Client(1);
  uint64_t lsn = 0;
  for (uint64_t seq = 1; seq <= 100; ++seq) ix.Add(a.data(), seq, ++lsn);
  for (uint64_t seq = 50; seq <= 150; ++seq) ix.Add(a.data(), seq, ++lsn);  // a resend from 50
  // seq 60: at lsn 60 and at lsn 100 + 11.
  const auto rs = Ranges(ix, a, 60, lsn + 1);
  REQUIRE(rs.size() == 2);
  CHECK(Covers(rs, 60));
  CHECK(Covers(rs, 111));
  // seq 120 only in the second run (the first run's last range is read too:
  // the index does not know where a run's seqs end); seq 10 only in the
  // first run, since the second starts at 50.
  const auto r120 = Ranges(ix, a, 120, lsn + 1);
  REQUIRE(r120.size() == 2);
  CHECK(Covers(r120, 171));
  const auto r10 = Ranges(ix, a, 10, lsn + 1);
  REQUIRE(r10.size() == 1);
  CHECK(Covers(r10, 10));
  // A seq repeated at once is a fall too.
  ReceiptIndex twice;
  twice.Add(a.data(), 7, 1);
  twice.Add(a.data(), 7, 2);
  const auto r7 = Ranges(twice, a, 7, 3);
  CHECK(r7.size() == 2);
  CHECK(Covers(r7, 1));
  CHECK(Covers(r7, 2));
}

TEST_CASE("ReceiptIndex forgets marks and clients below the floor, and keeps what covers above it",
          "[receipt_index][log]") {
  ReceiptIndex ix;
  const auto gone = Client(1), stays = Client(2);
  uint64_t lsn = 0;
  for (uint64_t seq = 1; seq <= 1000; ++seq) ix.Add(gone.data(), seq, ++lsn);
  for (uint64_t seq = 1; seq <= 5000; ++seq) ix.Add(stays.data(), seq, ++lsn);
  const size_t marks = ix.marks(), bytes = ix.memory_bytes();
  ix.Prune(3000);
  // `gone`'s last entry is 2000 lsns below the floor: nothing of it is left.
  CHECK(Ranges(ix, gone, 1000, lsn + 1).empty());
  CHECK(ix.marks() < marks - 1000 / 64);
  CHECK(ix.memory_bytes() < bytes);
  // `stays` from its entry at lsn 3000 (seq 2000) on is still found.
  for (uint64_t seq = 2000; seq <= 5000; ++seq) {
    CAPTURE(seq);
    CHECK(Covers(Ranges(ix, stays, seq, lsn + 1), seq + 1000));
  }
  // A client pruned away and seen again starts afresh.
  ix.Prune(lsn + 1000);
  CHECK(ix.marks() == 0);
  ix.Add(gone.data(), 1, lsn + 1001);
  const auto rs = Ranges(ix, gone, 1, lsn + 1002);
  REQUIRE(rs.size() == 1);
  CHECK(Covers(rs, lsn + 1001));
}

TEST_CASE("ReceiptIndex: a client that sends one event costs under 200 bytes, and is forgotten "
          "with it",
          "[receipt_index][log]") {
  ReceiptIndex ix;
  for (uint64_t i = 1; i <= 10000; ++i) {
    ReceiptIndex::ClientId c{};
    std::memcpy(c.data(), &i, sizeof i);
    ix.Add(c.data(), 1, i);
  }
  CHECK(ix.marks() == 10000);
  CHECK(ix.memory_bytes() < 10000 * 200);
  ix.Prune(10000 + ReceiptIndex::kMaxGap);
  CHECK(ix.marks() == 0);
  CHECK(ix.memory_bytes() < 10000 * 200 / 4);
}

TEST_CASE("ReceiptIndex: random interleavings, resends and pruning; every retained entry is in a "
          "range of at most kMaxGap lsns",
          "[receipt_index][log]") {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    CAPTURE(seed);
    std::mt19937_64 rng(seed);
    ReceiptIndex ix;
    const int clients = 1 + static_cast<int>(rng() % 12);
    std::vector<uint64_t> next_seq(clients, 1);
    std::vector<std::pair<int, uint64_t>> at;  // lsn - 1 -> (client, seq)
    uint64_t floor = 1;
    for (uint64_t lsn = 1; lsn <= 30000; ++lsn) {
      // Skewed: client 0 writes most, the last ones rarely.
      int c = static_cast<int>(rng() % clients);
      if (rng() % 3 != 0) c = static_cast<int>(rng() % (1 + c));
      uint64_t& n = next_seq[c];
      if (rng() % 500 == 0 && n > 1) n -= 1 + rng() % std::min<uint64_t>(n - 1, 80);  // resend
      if (rng() % 50 == 0) n += rng() % 5;                                          // a gap
      const auto id = Client(static_cast<uint8_t>(c));
      ix.Add(id.data(), n, lsn);
      at.emplace_back(c, n);
      ++n;
      if (lsn % 7000 == 0) {
        floor += rng() % 4000;
        ix.Prune(floor);
      }
    }
    const uint64_t limit = at.size() + 1;
    for (uint64_t lsn = floor; lsn < limit; lsn += 1 + rng() % 5) {
      const int c = at[lsn - 1].first;
      const uint64_t seq = at[lsn - 1].second;
      const auto rs = Ranges(ix, Client(static_cast<uint8_t>(c)), seq, limit);
      CAPTURE(lsn, c, seq);
      REQUIRE(Covers(rs, lsn));
      for (const Range& r : rs) {
        CHECK(r.from < r.to);
        CHECK(r.to <= limit);
        CHECK(r.to - r.from <= ReceiptIndex::kMaxGap);
      }
    }
  }
}

}  // namespace forkd::log
