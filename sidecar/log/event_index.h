// An index from event id to log position over the retained log, for
// `GET /api/events/<id>`: each entry is a 64-bit hash of the event's id (its
// idempotencyKey, or "<client hex>-<seq>") and its lsn, kept in 8 bytes.
//
// Layout: 256 shards chosen by the hash's top 8 bits, each an open-addressing
// table (linear probing) of 8-byte slots:
//
//   slot = tag:24 lsn:40       0: empty
//
// tag is the next 24 bits of the hash (lowest bit forced to 1, so a slot is
// never 0), and a slot's home is the tag's top bits, so a shard can grow and
// rehash without the ids. lsn is kept modulo 2^40 and read back as the one
// value in [floor, next) with those bits: the retained range is far shorter
// than 2^40 entries. A lookup returns every live slot whose shard and tag
// match (32 bits of the hash): candidates, which the caller confirms by
// reading the entry at each lsn, so a collision can cost a read but never
// give a wrong answer. Several entries may carry one id (a dead letter
// replayed is appended again under its id); all are returned.
//
// Pruning is O(1): Prune(floor) makes every slot below floor dead; a dead
// slot still lengthens probes until an insert reuses it or its shard is
// rehashed (at 3/4 full, to twice its live entries).
//
// Memory: 8 bytes a slot; a shard is between 3/8 and 3/4 full, so 11 to 22
// bytes per indexed event.
//
// Threads: one writer (Insert, Prune); Find and the accessors from any
// thread. Each shard has its own shared_mutex: the writer holds one shard
// briefly per insert, readers share it.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <shared_mutex>
#include <string_view>
#include <vector>

namespace forkd::log {

class EventIndex {
 public:
  static constexpr uint64_t kLsnBits = 40;
  static constexpr uint64_t kLsnMask = (uint64_t{1} << kLsnBits) - 1;
  static constexpr int kShardBits = 8;
  static constexpr size_t kShards = size_t{1} << kShardBits;

  EventIndex();
  EventIndex(const EventIndex&) = delete;
  EventIndex& operator=(const EventIndex&) = delete;

  // The hash an id is indexed under (stable within a process).
  static uint64_t Hash(std::string_view id);

  // ---- writer ----
  // Adds (hash, lsn); lsns must increase from one call to the next.
  void Insert(uint64_t hash, uint64_t lsn);
  // Forgets every entry below `floor` (the log's first retained lsn).
  void Prune(uint64_t floor);
  // Starts loading the slot an Insert of `hash` will probe first into the
  // cache, so that inserts issued a few entries after their prefetch do not
  // each wait out a cache miss in a large index (no lock: the writer is
  // the only thread that changes slots).
  void Prefetch(uint64_t hash) const {
    const Shard& s = shards_[hash >> (64 - kShardBits)];
    __builtin_prefetch(s.slots.data() + Home(s, Tag(hash)), 1);
  }

  // ---- any thread ----
  // Appends to *lsns the live lsns indexed under a hash that matches `hash`
  // in its top 32 bits, in no particular order. Never blocks on I/O.
  void Find(uint64_t hash, std::vector<uint64_t>* lsns) const;
  uint64_t floor() const { return floor_.load(std::memory_order_acquire); }
  // One past the last lsn inserted (0: none yet).
  uint64_t next() const { return next_.load(std::memory_order_acquire); }
  // Slots in use: the entries indexed, those below floor() included until
  // an insert reuses their slot or their shard is rehashed.
  uint64_t entries() const { return entries_.load(std::memory_order_relaxed); }
  // Bytes held by the slots.
  size_t memory_bytes() const { return memory_.load(std::memory_order_relaxed); }

 private:
  struct Shard {
    mutable std::shared_mutex mu;
    std::vector<uint64_t> slots;  // size a power of two
    int bits = 0;                 // log2(slots.size())
    size_t used = 0;              // non-empty slots (live or dead)
  };
  static uint32_t Tag(uint64_t hash) {
    return static_cast<uint32_t>((hash >> 32) & 0xFFFFFF) | 1;
  }
  size_t Home(const Shard& s, uint32_t tag) const { return tag >> (24 - s.bits); }
  // The full lsn of slot value `v`, and whether it is live, given floor/next.
  static bool Live(uint64_t v, uint64_t floor, uint64_t next, uint64_t* lsn) {
    const uint64_t low = v & kLsnMask;
    const uint64_t full = floor + ((low - floor) & kLsnMask);
    *lsn = full;
    return full >= floor && full < next;
  }
  // Rebuilds `s` with room for twice its live entries (at least 64 slots).
  void Rehash(Shard& s, uint64_t floor, uint64_t next);

  std::unique_ptr<Shard[]> shards_;
  std::atomic<uint64_t> floor_{1};
  std::atomic<uint64_t> next_{0};
  std::atomic<uint64_t> entries_{0};
  std::atomic<size_t> memory_{0};
};

}  // namespace forkd::log
