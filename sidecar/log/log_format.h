// The on-disk format of forkd's write-ahead log. docs/log_format.md has the
// grammar; this header has the constants.
//
// The log is a sequence of segment files named by the sequence number (LSN)
// of their first entry: wal/00000000000000000001.log. A segment is a sequence
// of 32 KiB blocks, each holding physical records:
//
//   checksum: u32   masked CRC32C of type and data
//   length:   u16   bytes of data
//   type:     u8    FULL, or FIRST/MIDDLE/LAST for an entry split across blocks
//   data:     length bytes
//
// A block never begins a record header in its last 6 bytes; those are zero
// padding. One logical entry is (entry header, event):
//
//   lsn: u64, recv_us: i64, client_id: 16 bytes, seq: u64, event: msgpack
#pragma once

#include <cstddef>
#include <cstdint>

namespace forkd::log {

enum RecordType : uint8_t {
  kZeroType = 0,  // never written; zeros left by a crash read as this
  kFullType = 1,
  kFirstType = 2,
  kMiddleType = 3,
  kLastType = 4,
};
inline constexpr uint8_t kMaxRecordType = kLastType;

inline constexpr size_t kBlockSize = 32768;
inline constexpr size_t kHeaderSize = 4 + 2 + 1;

inline constexpr size_t kEntryHeaderSize = 8 + 8 + 16 + 8;

// Segment files are named by their first lsn: 00000000000000000001.log.
inline constexpr size_t kSegmentNameDigits = 20;
inline bool ParseSegmentName(const char* name, uint64_t* first_lsn) {
  size_t n = 0;
  while (name[n] != '\0') ++n;
  if (n != kSegmentNameDigits + 4 || name[n - 4] != '.' || name[n - 3] != 'l' ||
      name[n - 2] != 'o' || name[n - 1] != 'g') {
    return false;
  }
  uint64_t v = 0;
  for (size_t i = 0; i < kSegmentNameDigits; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    v = v * 10 + static_cast<uint64_t>(name[i] - '0');
  }
  *first_lsn = v;
  return v > 0;
}

}  // namespace forkd::log
