// The write-ahead log: segment files, group commit, recovery, and readers
// that follow the durable end.
//
// Threads: one appender thread (ingest) calls Append/StartCommit/
// TakeCompletion; the Log's own sync thread writes and fsyncs; any thread may
// create readers and query the durable position.
//
// Group commit: entries appended while a commit is in flight accumulate in the
// next batch, so one write + fdatasync covers everything that arrived during
// the previous one.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "log/entry.h"
#include "log/log_reader.h"
#include "log/log_writer.h"
#include "log/retention.h"
#include "wire/msgpack.h"

namespace forkd::log {

enum class FsyncPolicy { kBatch, kNever };

struct LogOptions {
  std::string dir;                       // holds the segment files
  FsyncPolicy fsync = FsyncPolicy::kBatch;
  uint64_t segment_bytes = 64ull << 20;  // roll to a new segment past this size
  // Readers check each entry's event with wire::CheckStoredEvent and its lsn
  // against the durable end before handing it on; one that fails (its CRC
  // held, its content did not: an edited file, a bug of an older version) is
  // reported through the Reporter and skipped. Off only for tests of the log
  // itself, whose entries are arbitrary bytes.
  bool check_events = true;
};

// Where a reader stands: the next entry's lsn, and a hint of where it is.
struct Position {
  uint64_t next_lsn = 1;
  uint64_t segment = 0;  // first lsn of the segment holding next_lsn (0: unknown)
  uint64_t offset = 0;   // byte offset in that segment
};

// What the recovery on Open found.
struct RecoveryInfo {
  size_t segments = 0;
  uint64_t bytes = 0;
  uint64_t next_lsn = 1;
  uint64_t torn_tail_bytes = 0;   // truncated from the end of the last segment
  uint64_t corrupt_bytes = 0;     // damaged bytes before the end (will be skipped)
  std::vector<std::string> damage;  // one line per damaged region
};

// The outcome of one group commit, for the appender to acknowledge.
struct CommitResult {
  uint64_t generation = 0;
  uint64_t first_lsn = 0;  // entries [first_lsn, last_lsn] were in the batch
  uint64_t last_lsn = 0;
  Status status;           // not ok: none of them is in the log
};

class TailReader;

class Log {
 public:
  [[nodiscard]] static Status Open(const LogOptions& options, std::unique_ptr<Log>* out,
                                   RecoveryInfo* info);
  ~Log();
  Log(const Log&) = delete;
  Log& operator=(const Log&) = delete;

  // ---- appender thread ----
  // Frames one entry into the pending batch and returns its lsn.
  uint64_t Append(int64_t recv_us, const uint8_t* client_id, uint64_t seq, const uint8_t* event,
                  size_t size);
  size_t pending_bytes() const { return pending_.size(); }
  uint64_t pending_entries() const { return next_lsn_ - pending_first_lsn_; }
  bool commit_in_flight() const { return in_flight_; }
  // Hands the pending batch to the sync thread. False if a commit is already
  // in flight or nothing is pending.
  bool StartCommit(uint64_t* generation);
  // Readable (eventfd) when a commit has completed.
  int completion_fd() const { return completion_fd_; }
  // Takes the completed commit, if any. After a failure, the pending batch
  // (appended during the failed commit) is failed too, with the same status,
  // and *pending_failed says which lsns it held.
  bool TakeCompletion(CommitResult* out, CommitResult* pending_failed);

  // ---- any thread ----
  // Next lsn past everything durable.
  uint64_t durable_next_lsn() const { return durable_next_lsn_.load(std::memory_order_acquire); }
  // Blocks until durable_next_lsn() > lsn, the timeout passes, or Shutdown.
  void WaitDurable(uint64_t lsn, int64_t timeout_us);
  // Wakes every waiter; used on shutdown.
  void WakeAll();
  // A reader starting at `from` (its hint is used when it is still valid).
  [[nodiscard]] Status NewReader(const Position& from, Reporter* reporter,
                                 std::unique_ptr<TailReader>* out);
  // Deletes sealed segments whose entries all have lsn < min_next_lsn.
  // Returns how many were deleted.
  size_t DeleteSegmentsBefore(uint64_t min_next_lsn);
  // The same, keeping those `policy` retains (log/retention.h) as of `now_us`
  // (wall clock).
  size_t DeleteSegments(uint64_t min_next_lsn, int64_t now_us, const RetentionPolicy& policy);
  // Bytes held in segment files, and the oldest retained lsn.
  uint64_t total_bytes() const;
  uint64_t first_lsn() const;
  // Durable bytes from `from` to the log's end: what a cursor there holds.
  uint64_t BytesFrom(const Position& from) const;
  size_t segment_count() const;
  // The first lsn of the newest segments that together hold at least
  // `min_bytes` (or all of them): where a scan of the recent log starts.
  uint64_t RecentStart(uint64_t min_bytes) const;

  struct Stats {
    std::atomic<uint64_t> commits{0};
    std::atomic<uint64_t> entries{0};
    std::atomic<uint64_t> bytes{0};
    std::atomic<uint64_t> sync_us_total{0};
    std::atomic<uint64_t> errors{0};
  };
  const Stats& stats() const { return stats_; }

 private:
  friend class TailReader;
  struct Segment {
    uint64_t first_lsn;
    uint64_t size;  // durable size
    bool sealed;
    int64_t written_us;  // wall time of its last durable write (its file's mtime at recovery)
  };
  struct Batch {
    uint64_t generation = 0;
    uint64_t segment = 0;  // first lsn of the segment it goes to
    uint64_t offset = 0;   // where in that segment it starts
    uint64_t first_lsn = 0;
    uint64_t last_lsn = 0;
    wire::Buffer bytes;
  };

  explicit Log(const LogOptions& options);
  Status Recover(RecoveryInfo* info);
  void SyncLoop();
  Status WriteBatch(Batch& b);
  std::string SegmentPath(uint64_t first_lsn) const;
  // Segment lookup for readers: limit to read up to, sealed, next segment.
  bool SegmentInfo(uint64_t segment, uint64_t* limit, bool* sealed, uint64_t* next) const;
  uint64_t SegmentFor(uint64_t lsn) const;

  const LogOptions options_;
  int dir_fd_ = -1;
  int completion_fd_ = -1;
  // Where this process's first entry went (set by Recover, then constant):
  // records from there on were written by this process, each event checked
  // by ingest before it was appended.
  uint64_t opened_segment_ = 0;
  uint64_t opened_offset_ = 0;

  // Appender state (appender thread only).
  LogWriter writer_;
  wire::Buffer pending_;
  uint64_t next_lsn_ = 1;
  uint64_t pending_first_lsn_ = 1;
  uint64_t pending_segment_ = 0;
  uint64_t pending_offset_ = 0;
  uint64_t generation_ = 0;
  bool in_flight_ = false;
  bool roll_next_ = false;
  uint64_t durable_segment_ = 0;  // the appender's view, updated on completion
  uint64_t durable_offset_ = 0;
  uint8_t entry_header_[kEntryHeaderSize];

  // Shared with the sync thread.
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::condition_variable durable_cv_;
  std::unique_ptr<Batch> to_sync_;           // guarded by mu_
  std::deque<CommitResult> completions_;     // guarded by mu_
  std::vector<Segment> segments_;            // guarded by mu_
  bool stop_ = false;                        // guarded by mu_
  std::atomic<uint64_t> durable_next_lsn_{1};
  std::unique_ptr<Batch> spare_;             // recycled batch buffer, guarded by mu_

  // Sync thread state.
  int active_fd_ = -1;
  uint64_t active_segment_ = 0;

  Stats stats_;
  std::thread sync_thread_;
};

// Follows the log from a position, across segments, up to the durable end.
// One per consumer; not thread-safe.
class TailReader {
 public:
  enum class Result { kEntry, kEnd };
  ~TailReader();

  // kEntry: *e is the next entry (views valid until the next call); its
  // event may be walked with a wire::Reader (LogOptions::check_events,
  // unless set_check_events(false)): an entry from before this process
  // opened the log passed wire::CheckStoredEvent here; one this process
  // wrote was checked by ingest before it was appended, and its checksum
  // says it is what was written, so it is not walked twice. kEnd: caught up with the durable end.
  // An I/O error is returned in *io. Entries that fail the check are
  // reported and skipped.
  [[nodiscard]] Result Next(Entry* e, Status* io);
  // Where to resume after the last entry returned.
  Position position() const;
  // Off: entries are handed on with their events unchecked (their CRC and
  // lsn still are), for a consumer that reads only what it bounds-checks
  // itself, as the event index reads ids. On by default.
  void set_check_events(bool on) { check_events_ = on; }

 private:
  friend class Log;
  TailReader(Log* log, Reporter* reporter) : log_(log), reporter_(reporter) {}
  Status OpenSegment(uint64_t segment, uint64_t offset);
  // LogOptions::check_events: false (reported) when `e` must not be handed on.
  bool CheckEntry(const Entry& e, size_t record_size);
  // Whether the record just read lies where this process has written (by
  // position, not by the lsn the entry claims).
  bool WrittenSinceOpen() const;

  Log* log_;
  Reporter* reporter_;
  uint64_t segment_ = 0;
  int fd_ = -1;
  std::unique_ptr<LogReader> reader_;
  uint64_t next_lsn_ = 1;
  uint64_t skip_below_ = 0;  // entries with lsn below this are skipped
  bool check_events_ = true;
};

}  // namespace forkd::log
