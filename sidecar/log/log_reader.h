// Reads entries back from one segment file. A torn tail (the writer died
// mid-record) reads as the end; damage in the middle is reported through the
// Reporter and skipped to the next block, never joined to the next record.
// Not thread-safe; one reader per consumer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "wire/msgpack.h"

namespace forkd::log {

class Reporter {
 public:
  virtual ~Reporter() = default;
  // `bytes` of the segment at `offset` were dropped because of `reason`.
  virtual void Corruption(uint64_t offset, size_t bytes, const std::string& reason) = 0;
};

class LogReader {
 public:
  enum class Result { kRecord, kEnd };

  // Reads `fd` (not owned) from `offset`, which must be a record boundary.
  LogReader(int fd, uint64_t offset, Reporter* reporter);
  LogReader(const LogReader&) = delete;
  LogReader& operator=(const LogReader&) = delete;

  // Reads the next logical record within the first `limit` bytes of the file.
  // kRecord: *record views it until the next call. kEnd: nothing complete
  // before `limit`; a later call with a larger limit resumes. An I/O error
  // other than a short read is returned as a Status through *io.
  [[nodiscard]] Result ReadRecord(uint64_t limit, std::string_view* record, Status* io);

  // Offset just past the last record returned: where a resumed read starts.
  uint64_t position() const { return pos_; }
  // Offset of the start of the last record returned.
  uint64_t last_record_offset() const { return last_record_offset_; }

 private:
  // Makes [off, off+n) available in buf_; false on a short read or error.
  bool Fill(uint64_t off, size_t n, uint64_t limit, Status* io);
  const uint8_t* At(uint64_t off) const { return buf_.data() + (off - buf_off_); }
  void Report(uint64_t off, size_t bytes, const std::string& reason);

  int fd_;
  Reporter* reporter_;
  uint64_t pos_;
  uint64_t last_record_offset_ = 0;
  wire::Buffer buf_;
  uint64_t buf_off_ = 0;
  std::string scratch_;
};

}  // namespace forkd::log
