#include "log/retention.h"

namespace forkd::log {

size_t SegmentsToDelete(const std::vector<SegmentSpan>& segments, uint64_t min_next_lsn,
                        int64_t now_us, const RetentionPolicy& policy) {
  // The passed ones: a prefix, since cursors move forward through the log.
  size_t passed = 0;
  uint64_t passed_bytes = 0;
  while (passed + 1 < segments.size() && segments[passed].sealed &&
         segments[passed + 1].first_lsn <= min_next_lsn) {
    passed_bytes += segments[passed].size;
    ++passed;
  }
  size_t n = 0;
  while (n < passed) {
    const SegmentSpan& s = segments[n];
    const bool expired = policy.max_age_us <= 0 || now_us - s.written_us >= policy.max_age_us;
    const bool too_big = passed_bytes > policy.max_bytes;
    if (!expired && !too_big) break;
    passed_bytes -= s.size;
    ++n;
  }
  return n;
}

}  // namespace forkd::log
