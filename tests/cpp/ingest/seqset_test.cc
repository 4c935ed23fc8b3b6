// SeqSet: sorted, disjoint, non-adjacent inclusive ranges of sequence
// numbers, checked against a std::set model.
#include <set>

#include "ingest/ingest.h"
#include "test_util.h"

namespace forkd::ingest {
namespace {

using Ranges = std::vector<std::pair<uint64_t, uint64_t>>;

Ranges Of(const SeqSet& s) {
  Ranges out;
  for (const auto& r : s.ranges()) out.emplace_back(r.first, r.last);
  return out;
}

// The ranges a set of numbers makes.
Ranges Model(const std::set<uint64_t>& m) {
  Ranges out;
  for (uint64_t v : m) {
    if (!out.empty() && out.back().second + 1 == v) {
      out.back().second = v;
    } else {
      out.emplace_back(v, v);
    }
  }
  return out;
}

}  // namespace

TEST_CASE("SeqSet: in-order adds make one range", "[seqset]") {
  SeqSet s;
  CHECK(s.ranges().empty());
  CHECK_FALSE(s.Contains(1));
  for (uint64_t i = 1; i <= 1000; ++i) s.Add(i);
  CHECK(Of(s) == Ranges{{1, 1000}});
  CHECK(s.Contains(1));
  CHECK(s.Contains(500));
  CHECK(s.Contains(1000));
  CHECK_FALSE(s.Contains(0));
  CHECK_FALSE(s.Contains(1001));
}

TEST_CASE("SeqSet: out-of-order adds fill gaps and merge", "[seqset]") {
  SeqSet s;
  s.Add(5);
  s.Add(1);
  s.Add(3);
  CHECK(Of(s) == Ranges{{1, 1}, {3, 3}, {5, 5}});
  CHECK_FALSE(s.Contains(2));
  CHECK_FALSE(s.Contains(4));
  s.Add(4);  // joins 3 and 5
  CHECK(Of(s) == Ranges{{1, 1}, {3, 5}});
  s.Add(2);  // joins everything
  CHECK(Of(s) == Ranges{{1, 5}});
  s.Add(3);  // already in
  CHECK(Of(s) == Ranges{{1, 5}});
  s.Add(0);  // extends the first range down
  CHECK(Of(s) == Ranges{{0, 5}});
  s.Add(100);
  s.Add(99);  // extends a range down
  s.Add(50);
  CHECK(Of(s) == Ranges{{0, 5}, {50, 50}, {99, 100}});
  s.Add(6);  // extends the first range up, out of order
  CHECK(Of(s) == Ranges{{0, 6}, {50, 50}, {99, 100}});
  CHECK(s.Contains(50));
  CHECK(s.Contains(99));
  CHECK_FALSE(s.Contains(51));
  CHECK_FALSE(s.Contains(98));
  CHECK_FALSE(s.Contains(101));
}

TEST_CASE("SeqSet: Remove cuts, splits and drops ranges", "[seqset]") {
  SeqSet s;
  for (uint64_t i = 1; i <= 20; ++i) s.Add(i);
  s.Add(30);
  s.Add(31);
  s.Remove(5, 7);  // a hole in the middle
  CHECK(Of(s) == Ranges{{1, 4}, {8, 20}, {30, 31}});
  s.Remove(1, 2);  // the front of a range
  CHECK(Of(s) == Ranges{{3, 4}, {8, 20}, {30, 31}});
  s.Remove(18, 30);  // across two ranges
  CHECK(Of(s) == Ranges{{3, 4}, {8, 17}, {31, 31}});
  s.Remove(21, 29);  // nothing there
  CHECK(Of(s) == Ranges{{3, 4}, {8, 17}, {31, 31}});
  s.Remove(31, 31);  // a whole range
  CHECK(Of(s) == Ranges{{3, 4}, {8, 17}});
  CHECK_FALSE(s.Contains(31));
  s.Remove(0, UINT64_MAX);
  CHECK(s.ranges().empty());
  s.Add(7);  // usable after everything is gone
  CHECK(Of(s) == Ranges{{7, 7}});
}

TEST_CASE("SeqSet agrees with a std::set under random adds and removes", "[seqset]") {
  test::Rng rng(17);
  for (int round = 0; round < 20; ++round) {
    SeqSet s;
    std::set<uint64_t> m;
    for (int op = 0; op < 500; ++op) {
      if (rng.Uniform(5) != 0) {
        // Mostly near the top (in order), sometimes anywhere (out of order).
        const uint64_t v =
            rng.Uniform(3) == 0 || m.empty() ? 1 + rng.Uniform(300) : *m.rbegin() + rng.Uniform(3);
        s.Add(v);
        m.insert(v);
      } else {
        const uint64_t a = 1 + rng.Uniform(300);
        const uint64_t b = a + rng.Uniform(20);
        s.Remove(a, b);
        m.erase(m.lower_bound(a), m.upper_bound(b));
      }
      INFO("round " << round << ", op " << op);
      REQUIRE(Of(s) == Model(m));
    }
    for (uint64_t v = 0; v <= 330; ++v) REQUIRE(s.Contains(v) == (m.count(v) == 1));
  }
}

TEST_CASE("SeqSet at the top of the sequence space", "[seqset]") {
  SeqSet s;
  s.Add(UINT64_MAX - 1);
  s.Add(UINT64_MAX);
  CHECK(Of(s) == Ranges{{UINT64_MAX - 1, UINT64_MAX}});
  CHECK(s.Contains(UINT64_MAX));
  s.Remove(UINT64_MAX, UINT64_MAX);
  CHECK(Of(s) == Ranges{{UINT64_MAX - 1, UINT64_MAX - 1}});
}

// Once UINT64_MAX is in the set, `last + 1` would wrap to 0: later adds must
// still keep the ranges sorted and UINT64_MAX findable.
TEST_CASE("SeqSet: adds after UINT64_MAX keep the ranges sorted", "[seqset]") {
  SeqSet s;
  s.Add(UINT64_MAX);
  s.Add(5);
  CHECK(Of(s) == Ranges{{5, 5}, {UINT64_MAX, UINT64_MAX}});
  CHECK(s.Contains(UINT64_MAX));
  s.Add(UINT64_MAX);
  CHECK(s.ranges().size() == 2);
}

}  // namespace forkd::ingest
