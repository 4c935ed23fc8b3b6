// Which log segments may go: `wal.retention`. A segment every cursor has
// passed is kept as history (for `forkd replay` and `from: earliest`), up to
// an age and a total size; a segment some cursor still needs is never
// deleted, whatever its age or the log's size.
//
// A pure function over the segment list, so the decision is tested apart
// from the files.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace forkd::log {

struct RetentionPolicy {
  // A passed segment goes once its newest entry was written this long ago.
  // 0: as soon as every cursor has passed it (no history is kept).
  int64_t max_age_us = 24ll * 3600 * 1000000;
  // The passed segments kept hold at most this many bytes: past it the
  // oldest go first, whatever their age.
  uint64_t max_bytes = 1ull << 30;
};

struct SegmentSpan {
  uint64_t first_lsn = 0;
  uint64_t size = 0;
  bool sealed = false;
  int64_t written_us = 0;  // wall time of its last write
};

// How many of `segments` (oldest first, as in the log) to delete, from the
// front: a segment can go only when it is sealed and every entry in it has
// an lsn below `min_next_lsn` (the lowest lsn any cursor still needs), and
// then does when the policy no longer keeps it. Segments go oldest first,
// so the log stays one contiguous range.
size_t SegmentsToDelete(const std::vector<SegmentSpan>& segments, uint64_t min_next_lsn,
                        int64_t now_us, const RetentionPolicy& policy);

}  // namespace forkd::log
