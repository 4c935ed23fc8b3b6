#include "log/log_writer.h"

#include <algorithm>
#include <cstring>

#include "core/crc32c.h"
#include "log/log_format.h"

namespace forkd::log {

void LogWriter::Reset(uint64_t segment_offset) {
  offset_ = segment_offset;
  block_offset_ = static_cast<size_t>(segment_offset % kBlockSize);
  for (uint8_t t = 0; t <= kMaxRecordType; ++t) type_crc_[t] = crc32c::Value(&t, 1);
}

void LogWriter::AddRecord(const uint8_t* a, size_t an, const uint8_t* b, size_t bn,
                          wire::Buffer* out) {
  size_t left = an + bn;
  size_t pos = 0;  // position in the logical concatenation
  // Worst case: one header and one padding tail per block touched.
  out->Reserve(out->size() + left + (left / (kBlockSize - kHeaderSize) + 2) * 2 * kHeaderSize);
  bool begin = true;
  do {
    const size_t leftover = kBlockSize - block_offset_;
    if (leftover < kHeaderSize) {
      // Too small for a header: pad the block with zeros and start a new one.
      if (leftover > 0) {
        std::memset(out->Grow(leftover), 0, leftover);
        out->Commit(leftover);
        offset_ += leftover;
      }
      block_offset_ = 0;
    }
    const size_t avail = kBlockSize - block_offset_ - kHeaderSize;
    const size_t frag = std::min(left, avail);
    const bool end = frag == left;
    const RecordType type = begin && end ? kFullType
                            : begin      ? kFirstType
                            : end        ? kLastType
                                         : kMiddleType;

    uint8_t* hdr = out->Grow(kHeaderSize + frag);
    uint8_t* data = hdr + kHeaderSize;
    // Copy the fragment, which may straddle a and b.
    size_t copied = 0;
    if (pos < an) {
      const size_t n = std::min(frag, an - pos);
      std::memcpy(data, a + pos, n);
      copied = n;
    }
    if (copied < frag) std::memcpy(data + copied, b + (pos + copied - an), frag - copied);
    const uint32_t crc = crc32c::Mask(crc32c::Extend(type_crc_[type], data, frag));
    std::memcpy(hdr, &crc, 4);
    hdr[4] = static_cast<uint8_t>(frag & 0xff);
    hdr[5] = static_cast<uint8_t>(frag >> 8);
    hdr[6] = type;
    out->Commit(kHeaderSize + frag);

    pos += frag;
    left -= frag;
    block_offset_ += kHeaderSize + frag;
    offset_ += kHeaderSize + frag;
    begin = false;
  } while (left > 0);
}

}  // namespace forkd::log
