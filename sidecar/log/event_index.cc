#include "log/event_index.h"

#include <mutex>

namespace forkd::log {
namespace {

constexpr int kMinBits = 6;
constexpr int kMaxBits = 24;  // the tag's bits: 2^24 slots a shard, 2^32 in all

uint64_t Mix(uint64_t h) {
  h ^= h >> 33;
  h *= 0xff51afd7ed558ccdull;
  h ^= h >> 33;
  h *= 0xc4ceb9fe1a85ec53ull;
  h ^= h >> 33;
  return h;
}

}  // namespace

EventIndex::EventIndex() : shards_(new Shard[kShards]) {
  for (size_t i = 0; i < kShards; ++i) {
    shards_[i].bits = kMinBits;
    shards_[i].slots.assign(size_t{1} << kMinBits, 0);
  }
  memory_.store(kShards * (size_t{8} << kMinBits));
}

uint64_t EventIndex::Hash(std::string_view id) {
  // FNV-1a, eight bytes a step, then a finaliser that spreads every bit of
  // the id over the top 32 bits the index keeps.
  uint64_t h = 0xcbf29ce484222325ull ^ id.size();
  size_t i = 0;
  for (; i + 8 <= id.size(); i += 8) {
    uint64_t w = 0;
    for (int k = 0; k < 8; ++k) w |= uint64_t{static_cast<uint8_t>(id[i + k])} << (8 * k);
    h = (h ^ w) * 0x100000001b3ull;
    h = Mix(h);
  }
  uint64_t w = 0;
  for (int k = 0; i < id.size(); ++i, ++k) w |= uint64_t{static_cast<uint8_t>(id[i])} << (8 * k);
  return Mix((h ^ w) * 0x100000001b3ull);
}

void EventIndex::Insert(uint64_t hash, uint64_t lsn) {
  Shard& s = shards_[hash >> (64 - kShardBits)];
  const uint32_t tag = Tag(hash);
  const uint64_t value = (uint64_t{tag} << kLsnBits) | (lsn & kLsnMask);
  const uint64_t floor = floor_.load(std::memory_order_relaxed);
  const uint64_t next = lsn + 1;
  std::unique_lock<std::shared_mutex> lock(s.mu);
  if ((s.used + 1) * 4 > s.slots.size() * 3) Rehash(s, floor, next);
  // A shard at its largest size fills past 3/4; a full one takes no more
  // (2^32 slots in all: billions of retained events).
  const size_t mask = s.slots.size() - 1;
  for (size_t i = Home(s, tag); s.used + 1 < s.slots.size(); i = (i + 1) & mask) {
    uint64_t& slot = s.slots[i];
    uint64_t ignored;
    if (slot == 0) {
      ++s.used;
      entries_.fetch_add(1, std::memory_order_relaxed);
      slot = value;
      break;
    }
    if (!Live(slot, floor, next, &ignored)) {  // dead: pruned since
      slot = value;
      break;
    }
  }
  lock.unlock();
  next_.store(next, std::memory_order_release);
}

void EventIndex::Rehash(Shard& s, uint64_t floor, uint64_t next) {
  std::vector<uint64_t> live;
  live.reserve(s.used);
  uint64_t ignored;
  for (uint64_t v : s.slots) {
    if (v != 0 && Live(v, floor, next, &ignored)) live.push_back(v);
  }
  int bits = kMinBits;
  while (bits < kMaxBits && (size_t{1} << bits) < live.size() * 2 + 2) ++bits;
  const size_t before = s.slots.size();
  s.slots.assign(size_t{1} << bits, 0);
  s.slots.shrink_to_fit();
  s.bits = bits;
  const size_t mask = s.slots.size() - 1;
  for (uint64_t v : live) {
    size_t i = Home(s, static_cast<uint32_t>(v >> kLsnBits));
    while (s.slots[i] != 0) i = (i + 1) & mask;
    s.slots[i] = v;
  }
  // Entries pruned from this shard are no longer counted.
  entries_.fetch_sub(s.used - live.size(), std::memory_order_relaxed);
  s.used = live.size();
  memory_.fetch_add(s.slots.size() * 8, std::memory_order_relaxed);
  memory_.fetch_sub(before * 8, std::memory_order_relaxed);
}

void EventIndex::Prune(uint64_t floor) {
  if (floor > floor_.load(std::memory_order_relaxed)) {
    floor_.store(floor, std::memory_order_release);
  }
}

void EventIndex::Find(uint64_t hash, std::vector<uint64_t>* lsns) const {
  const Shard& s = shards_[hash >> (64 - kShardBits)];
  const uint32_t tag = Tag(hash);
  std::shared_lock<std::shared_mutex> lock(s.mu);
  const uint64_t floor = floor_.load(std::memory_order_acquire);
  const uint64_t next = next_.load(std::memory_order_acquire);
  const size_t mask = s.slots.size() - 1;
  for (size_t i = Home(s, tag);; i = (i + 1) & mask) {
    const uint64_t v = s.slots[i];
    if (v == 0) break;
    uint64_t lsn;
    if ((v >> kLsnBits) == tag && Live(v, floor, next, &lsn)) lsns->push_back(lsn);
  }
}

}  // namespace forkd::log
