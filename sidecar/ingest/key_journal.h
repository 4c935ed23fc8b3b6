// The idempotency keys forkd has seen, each with the destination it was
// stored for, kept on disk so that a repeated key is recognised for the whole
// dedupe window, also after the log segment that held the first event is gone
// and forkd has restarted.
//
// File: <data_dir>/dedupe/keys.journal (version 2)
//   file   = header record*
//   header = "FORKKEY" version:u8                                  (8 bytes)
//   record = crc:u32 lsn:u64 recv_us:i64 key_len:u16 dest_len:u8
//            key:byte{key_len} dest:byte{dest_len}
// crc is the masked crc32c of the rest of the record. One record per
// (key, destination) pair; dest_len 0 means every destination (a record
// carried over from version 1, which did not say). Records are appended as
// keys are committed and synced about once a second; each sync ends with a
// marker (key_len 0) whose lsn says every key below it is in the journal, so
// recovery scans the log only from there. A torn tail is ignored. Rewritten
// with only the live keys when it has grown to twice their number. The log
// keeps every segment above synced_next_lsn(), so what the journal misses
// after a crash is still in the log's tail.
//
// Version 1 had no header and no destination:
//   record = crc:u32 lsn:u64 recv_us:i64 len:u16 key:byte{len}
// Open() reads such a file (its keys then hold for every destination, as they
// did) and rewrites it as version 2 before appending to it.
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
  static constexpr uint8_t kVersion = 2;
  // (key, destination or "" for every destination, lsn, recv_us)
  using Each = std::function<void(std::string_view, std::string_view, uint64_t, int64_t)>;

  explicit KeyJournal(std::string dir) : dir_(std::move(dir)) {}
  ~KeyJournal();
  KeyJournal(const KeyJournal&) = delete;
  KeyJournal& operator=(const KeyJournal&) = delete;

  // Reads the journal, calling `each` for every intact record, and opens it
  // for appending (converting a version 1 file first). *next_lsn is one past
  // the highest lsn read (0 if none). A file of a version this code does not
  // know is an error, left as it is.
  [[nodiscard]] Status Open(const Each& each, uint64_t* next_lsn);
  // Buffers one record. `dest` is a destination name (at most 255 bytes).
  void Add(std::string_view key, std::string_view dest, uint64_t lsn, int64_t recv_us);
  // Writes and syncs what is buffered. After success, every key of an event
  // below synced_next_lsn() is on disk.
  [[nodiscard]] Status Sync(uint64_t committed_next_lsn);
  // Replaces the file with the records `each_live` produces (it calls its
  // argument once per live (key, destination)).
  [[nodiscard]] Status Rewrite(const std::function<void(const Each&)>& each_live,
                               uint64_t committed_next_lsn);

  // Reads the journal in `dir` without opening it for writing (any thread,
  // any process; a torn tail ends it) for the newest record of `key`:
  // its event's lsn and receipt time. NotFound when there is none. For
  // GET /api/events/<id>, which tells a key older than the retained log.
  [[nodiscard]] static Status Find(const std::string& dir, std::string_view key, uint64_t* lsn,
                                   int64_t* recv_us);

  uint64_t synced_next_lsn() const { return synced_next_lsn_; }
  uint64_t records() const { return records_; }
  bool dirty() const { return !buf_.empty(); }
  std::string Path() const { return dir_ + "/keys.journal"; }

 private:
  static void Encode(std::string_view key, std::string_view dest, uint64_t lsn, int64_t recv_us,
                     std::string* out);
  // Reads a version 1 file's records from `data`, calling `each`, and
  // returns them as a version 2 file.
  std::string ConvertV1(const std::string& data, const Each& each, uint64_t* next_lsn);

  std::string dir_;
  int fd_ = -1;
  std::string buf_;
  uint64_t records_ = 0;
  uint64_t synced_next_lsn_ = 0;
};

}  // namespace forkd::ingest
