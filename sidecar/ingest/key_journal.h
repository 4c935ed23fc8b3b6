// The idempotency keys forkd has seen, kept on disk so that a repeated key is
// recognised for the whole dedupe window, also after the log segment that
// held the first event is gone and forkd has restarted.
//
// File: <data_dir>/dedupe/keys.journal, a sequence of records
//   crc:u32 (masked crc32c of the rest) lsn:u64 recv_us:i64 len:u16 key:byte{len}
// appended as keys are committed and synced about once a second; each sync
// ends with a marker (len 0) whose lsn says every key below it is in the
// journal, so recovery scans the log only from there. A torn
// tail is ignored. Rewritten with only the live keys when it has grown to
// twice their number. The log keeps every segment above synced_next_lsn(),
// so what the journal misses after a crash is still in the log's tail.
//
// Threads: the ingest thread only.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace forkd::ingest {

class KeyJournal {
 public:
  explicit KeyJournal(std::string dir) : dir_(std::move(dir)) {}
  ~KeyJournal();
  KeyJournal(const KeyJournal&) = delete;
  KeyJournal& operator=(const KeyJournal&) = delete;

  // Reads the journal, calling `each` for every intact record, and opens it
  // for appending. *next_lsn is one past the highest lsn read (0 if none).
  [[nodiscard]] Status Open(const std::function<void(std::string_view, uint64_t, int64_t)>& each,
                            uint64_t* next_lsn);
  // Buffers one record.
  void Add(std::string_view key, uint64_t lsn, int64_t recv_us);
  // Writes and syncs what is buffered. After success, every key of an event
  // below synced_next_lsn() is on disk.
  [[nodiscard]] Status Sync(uint64_t committed_next_lsn);
  // Replaces the file with the records `each_live` produces (it calls its
  // argument once per live key).
  [[nodiscard]] Status Rewrite(
      const std::function<void(const std::function<void(std::string_view, uint64_t, int64_t)>&)>&
          each_live,
      uint64_t committed_next_lsn);

  uint64_t synced_next_lsn() const { return synced_next_lsn_; }
  uint64_t records() const { return records_; }
  bool dirty() const { return !buf_.empty(); }

 private:
  static void Encode(std::string_view key, uint64_t lsn, int64_t recv_us, std::string* out);
  std::string Path() const { return dir_ + "/keys.journal"; }

  std::string dir_;
  int fd_ = -1;
  std::string buf_;
  uint64_t records_ = 0;
  uint64_t synced_next_lsn_ = 0;
};

}  // namespace forkd::ingest
