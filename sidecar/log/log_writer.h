// Frames log entries into physical records (log_format.h). The writer only
// formats: it appends bytes to a caller's buffer and tracks where in the
// segment they will land; the Log writes and syncs them. Not thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include "wire/msgpack.h"

namespace forkd::log {

class LogWriter {
 public:
  // `segment_offset` is the segment's current length: appends continue there.
  explicit LogWriter(uint64_t segment_offset = 0) { Reset(segment_offset); }

  // Appends the records for one entry, whose data is the concatenation of
  // a[0..an) and b[0..bn), to *out.
  void AddRecord(const uint8_t* a, size_t an, const uint8_t* b, size_t bn, wire::Buffer* out);

  // The segment length once everything appended so far is written.
  uint64_t offset() const { return offset_; }
  void Reset(uint64_t segment_offset);

 private:
  uint64_t offset_ = 0;
  size_t block_offset_ = 0;
  uint32_t type_crc_[5] = {};  // crc32c of each type byte, precomputed
};

}  // namespace forkd::log
