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

}  // namespace forkd::log
