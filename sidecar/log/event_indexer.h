// Keeps the indexes over the retained log that answer "which entries carry
// this id": it follows the log as a reader of its own (nothing is added to
// ingest's append path) and indexes each durable entry's id. An
// idempotency key goes into an EventIndex (a hash slot each); a receipt id
// ("<client hex>-<seq>") into a ReceiptIndex (sparse marks per client,
// whose sequence numbers rise with the log). It forgets the segments
// retention deletes, and reads an entry back by lsn through sparse
// checkpoints (one reader position every kCheckpointEvery entries), so a
// lookup by key reads at most that many entries from one place in one
// segment, and one by receipt id at most that many plus
// ReceiptIndex::kMaxGap per run of its client.
//
// Its view trails the durable end by however long the indexing thread takes
// to catch up: Find() says how far the index goes, so a caller can wait for
// an id just acknowledged (WaitIndexed).
//
// Besides the indexes it remembers, per client, the highest sequence number
// of the events retention has deleted, so a receipt id older than the
// retained log is told apart from one never seen (Expired).
//
// Threads: CatchUp on one thread (the indexer's); everything else from any
// thread. Reads of the log go through readers of their own.
#pragma once

#include <array>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "log/event_index.h"
#include "log/log.h"
#include "log/receipt_index.h"

namespace forkd::log {

// An entry read back: its header and a copy of its event.
struct FoundEntry {
  EntryHeader header;
  std::string event;
};

// The id of a stored event ([dests, key, options, payload], checked): its
// key when it has one, else "<client hex>-<seq>" written into `buf` (at
// least wire::kMaxEventIdSize bytes).
std::string_view StoredEventId(const Entry& e, char* buf);
// The same for an entry whose event was not checked: reads only the array
// header, the destinations and the key, each bounds-checked; false when
// they are malformed. *keyed: whether the id is the event's key.
bool UncheckedEventId(const Entry& e, char* buf, std::string_view* id, bool* keyed);

class EventIndexer {
 public:
  static constexpr uint64_t kCheckpointEvery = 64;

  using HashFn = uint64_t (*)(std::string_view);
  // `hash`: EventIndex::Hash; tests give a worse one to force collisions.
  explicit EventIndexer(Log* log, HashFn hash = &EventIndex::Hash) : log_(log), hash_(hash) {}
  EventIndexer(const EventIndexer&) = delete;
  EventIndexer& operator=(const EventIndexer&) = delete;

  // ---- the indexer's thread ----
  // Forgets what retention deleted, then indexes durable entries not yet
  // indexed, at most `max`. *indexed: how many were. An I/O error leaves the
  // index where it was; the next call tries again.
  [[nodiscard]] Status CatchUp(size_t max, size_t* indexed);

  // ---- any thread ----
  // Entries below this lsn are indexed (0 before the first CatchUp).
  uint64_t indexed_next_lsn() const { return indexed_next_.load(std::memory_order_acquire); }
  // Blocks until indexed_next_lsn() >= lsn or the timeout passes; true if it
  // got there.
  bool WaitIndexed(uint64_t lsn, int64_t timeout_us) const;
  // The retained entries whose id is `id`, oldest first, each confirmed by
  // reading it back (a hash collision is never an answer).
  [[nodiscard]] Status Find(std::string_view id, std::vector<FoundEntry>* out) const;
  // Reads the entry at `lsn`; NotFound when it is not in the retained log.
  [[nodiscard]] Status ReadAt(uint64_t lsn, FoundEntry* out) const;
  // Whether `id` is a receipt id ("<client hex>-<seq>") of an event
  // retention has deleted: its client's deleted events reach that sequence.
  bool Expired(std::string_view id) const;

  // The keys' index, and the receipt ids'.
  const EventIndex& index() const { return index_; }
  const ReceiptIndex& receipts() const { return receipts_; }
  // Entries of the retained log the index has gone through (by key, by
  // receipt id, or malformed, with nothing to find them by).
  uint64_t entries() const;
  // The indexes' bytes: slots, marks, checkpoints and the per-client
  // summaries.
  size_t memory_bytes() const;

 private:
  using ClientId = std::array<uint8_t, 16>;
  // Where to start reading for `lsn`: the last checkpoint at or below it.
  Position StartFor(uint64_t lsn) const;
  void Forget(uint64_t floor);
  // Appends to *out the entries in [from, to) that are client's event
  // `seq` under receipt id `id`.
  Status ScanFor(std::string_view id, const ClientId& client, uint64_t seq, uint64_t from,
                 uint64_t to, std::vector<FoundEntry>* out) const;

  Log* log_;
  HashFn hash_;
  EventIndex index_;
  ReceiptIndex receipts_;
  std::unique_ptr<TailReader> reader_;  // the indexer's thread only
  std::atomic<uint64_t> indexed_next_{0};
  mutable std::mutex wait_mu_;
  mutable std::condition_variable indexed_cv_;

  mutable std::shared_mutex mu_;     // guards what follows
  std::deque<Position> checkpoints_;  // increasing next_lsn
  // Per segment indexed (by its first lsn): each client's highest sequence
  // number in it; folded into deleted_seq_ when the segment goes.
  std::map<uint64_t, std::map<ClientId, uint64_t>> segment_seqs_;
  std::map<ClientId, uint64_t> deleted_seq_;
};

}  // namespace forkd::log
