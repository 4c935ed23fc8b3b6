#include "log/log_reader.h"

#include <unistd.h>

#include <cerrno>

#include "core/crc32c.h"
#include "log/log_format.h"

namespace forkd::log {
namespace {
constexpr size_t kReadChunk = 256 * 1024;
}

LogReader::LogReader(int fd, uint64_t offset, Reporter* reporter)
    : fd_(fd), reporter_(reporter), pos_(offset) {}

void LogReader::Report(uint64_t off, size_t bytes, const std::string& reason) {
  if (reporter_ != nullptr) reporter_->Corruption(off, bytes, reason);
}

bool LogReader::Fill(uint64_t off, size_t n, uint64_t limit, Status* io) {
  if (off >= buf_off_ && off + n <= buf_off_ + buf_.size()) return true;
  if (off + n > limit) return false;
  size_t want = static_cast<size_t>(std::min<uint64_t>(limit - off, std::max(n, kReadChunk)));
  buf_.Resize(want);
  size_t got = 0;
  while (got < want) {
    ssize_t r = ::pread(fd_, buf_.data() + got, want - got, static_cast<off_t>(off + got));
    if (r < 0) {
      if (errno == EINTR) continue;
      *io = ErrnoStatus("log read", "", errno);
      buf_.clear();
      return false;
    }
    if (r == 0) break;  // the file is shorter than the limit said
    got += static_cast<size_t>(r);
  }
  buf_.Resize(got);
  buf_off_ = off;
  return got >= n;
}

LogReader::Result LogReader::ReadRecord(uint64_t limit, std::string_view* record, Status* io) {
  bool in_fragmented = false;
  uint64_t fragment_start = 0;
  scratch_.clear();

  while (true) {
    const size_t in_block = static_cast<size_t>(pos_ % kBlockSize);
    if (kBlockSize - in_block < kHeaderSize) pos_ += kBlockSize - in_block;  // trailer padding

    if (!Fill(pos_, kHeaderSize, limit, io)) {
      // Nothing more within the limit. Any fragments read so far belong to a
      // record that is not complete yet (or is a torn tail): start over at
      // its beginning next time.
      if (in_fragmented) pos_ = fragment_start;
      return Result::kEnd;
    }
    const uint8_t* h = At(pos_);
    uint32_t masked;
    std::memcpy(&masked, h, 4);
    const size_t len = static_cast<size_t>(h[4]) | (static_cast<size_t>(h[5]) << 8);
    const uint8_t type = h[6];
    const size_t block_left = kBlockSize - static_cast<size_t>(pos_ % kBlockSize);

    if (type == kZeroType && len == 0 && masked == 0) {
      // Zeros where a record should be: a crash artifact. Drop the block.
      Report(pos_, block_left, "zeroed block");
      pos_ += block_left;
      in_fragmented = false;
      scratch_.clear();
      continue;
    }
    if (kHeaderSize + len > block_left) {
      Report(pos_, block_left, "bad record length");
      pos_ += block_left;
      in_fragmented = false;
      scratch_.clear();
      continue;
    }
    if (!Fill(pos_, kHeaderSize + len, limit, io)) {
      // The record runs past the limit: a torn tail, or not yet written.
      if (in_fragmented) pos_ = fragment_start;
      return Result::kEnd;
    }
    h = At(pos_);
    const uint8_t* data = h + kHeaderSize;
    const uint32_t expected = crc32c::Unmask(masked);
    const uint32_t actual = crc32c::Extend(crc32c::Value(&type, 1), data, len);
    if (expected != actual) {
      Report(pos_, block_left, "checksum mismatch");
      pos_ += block_left;
      in_fragmented = false;
      scratch_.clear();
      continue;
    }
    const uint64_t rec_off = pos_;
    pos_ += kHeaderSize + len;

    switch (type) {
      case kFullType:
        if (in_fragmented) {
          Report(fragment_start, scratch_.size(), "partial record without end");
          scratch_.clear();
        }
        last_record_offset_ = rec_off;
        *record = std::string_view(reinterpret_cast<const char*>(data), len);
        return Result::kRecord;
      case kFirstType:
        if (in_fragmented) Report(fragment_start, scratch_.size(), "partial record without end");
        scratch_.assign(reinterpret_cast<const char*>(data), len);
        in_fragmented = true;
        fragment_start = rec_off;
        break;
      case kMiddleType:
        if (!in_fragmented) {
          Report(rec_off, kHeaderSize + len, "missing start of fragmented record");
        } else {
          scratch_.append(reinterpret_cast<const char*>(data), len);
        }
        break;
      case kLastType:
        if (!in_fragmented) {
          Report(rec_off, kHeaderSize + len, "missing start of fragmented record");
        } else {
          scratch_.append(reinterpret_cast<const char*>(data), len);
          last_record_offset_ = fragment_start;
          *record = scratch_;
          return Result::kRecord;
        }
        break;
      default:
        Report(rec_off, kHeaderSize + len, "unknown record type " + std::to_string(type));
        in_fragmented = false;
        scratch_.clear();
        break;
    }
  }
}

}  // namespace forkd::log
