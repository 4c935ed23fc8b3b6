#include "ingest/ingest.h"

#include <algorithm>

namespace forkd::ingest {

bool SeqSet::Contains(uint64_t seq) const {
  // Most lookups hit the last range.
  for (auto it = ranges_.rbegin(); it != ranges_.rend(); ++it) {
    if (seq > it->last) return false;
    if (seq >= it->first) return true;
  }
  return false;
}

bool SeqSet::operator==(const SeqSet& o) const {
  return std::equal(ranges_.begin(), ranges_.end(), o.ranges_.begin(), o.ranges_.end(),
                    [](const wire::SeqRange& a, const wire::SeqRange& b) {
                      return a.first == b.first && a.last == b.last;
                    });
}

void SeqSet::Add(uint64_t seq) {
  // Written without `last + 1`, which wraps at UINT64_MAX.
  if (ranges_.empty() || (seq > ranges_.back().last && seq - ranges_.back().last > 1)) {
    ranges_.push_back({seq, seq});
    return;
  }
  if (seq > ranges_.back().last) {
    ranges_.back().last = seq;
    return;
  }
  // Out of order: insert and merge neighbours.
  auto it = std::lower_bound(ranges_.begin(), ranges_.end(), seq,
                             [](const wire::SeqRange& r, uint64_t s) { return r.last < s; });
  if (it != ranges_.end() && it->first <= seq) return;  // already in
  if (it != ranges_.end() && it->first - 1 == seq) {
    it->first = seq;
  } else {
    it = ranges_.insert(it, {seq, seq});
  }
  if (it != ranges_.begin() && it->first - std::prev(it)->last == 1) {
    std::prev(it)->last = it->last;
    it = ranges_.erase(it) - 1;
  }
  if (std::next(it) != ranges_.end() && std::next(it)->first - it->last == 1) {
    it->last = std::next(it)->last;
    ranges_.erase(std::next(it));
  }
}

void SeqSet::Remove(uint64_t first, uint64_t last) {
  std::vector<wire::SeqRange> out;
  for (const auto& r : ranges_) {
    if (r.last < first || r.first > last) {
      out.push_back(r);
      continue;
    }
    if (r.first < first) out.push_back({r.first, first - 1});
    if (r.last > last) out.push_back({last + 1, r.last});
  }
  ranges_.swap(out);
}

}  // namespace forkd::ingest
