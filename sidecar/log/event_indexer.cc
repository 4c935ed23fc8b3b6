#include "log/event_indexer.h"

#include <algorithm>
#include <chrono>

#include "wire/codec.h"
#include "wire/msgpack.h"

namespace forkd::log {

std::string_view StoredEventId(const Entry& e, char* buf) {
  wire::Reader rd(e.event, e.event_size);
  rd.Next();  // [dests, key, options, payload]
  rd.Skip();  // dests
  const wire::Value k = rd.Next();
  if (k.kind == wire::Kind::kStr) return k.str();
  return std::string_view(buf, wire::FormatEventIdTo(e.header.client_id, e.header.seq, buf));
}

bool UncheckedEventId(const Entry& e, char* buf, std::string_view* id, bool* keyed) {
  // [dests, key, options, payload]: the array header, then the first two
  // values, each checked before it is read; the rest is not looked at.
  if (e.event_size < 1 || e.event[0] != 0x94) return false;
  constexpr wire::Limits kStored{wire::kMaxCheckDepth, UINT32_MAX, UINT32_MAX};
  const uint8_t* p = e.event + 1;
  size_t left = e.event_size - 1, used = 0;
  if (!wire::CheckValue(p, left, kStored, &used)) return false;  // dests
  p += used;
  left -= used;
  if (!wire::CheckValue(p, left, kStored, &used)) return false;  // key
  wire::Reader rd(p, used);
  const wire::Value k = rd.Next();
  *keyed = k.kind == wire::Kind::kStr;
  *id = *keyed ? k.str()
               : std::string_view(buf, wire::FormatEventIdTo(e.header.client_id, e.header.seq, buf));
  return true;
}

Status EventIndexer::CatchUp(size_t max, size_t* indexed) {
  *indexed = 0;
  const uint64_t floor = log_->first_lsn();
  if (!reader_) {
    Status s = log_->NewReader(Position{floor, 0, 0}, nullptr, &reader_);
    if (!s.ok()) return s;
    // Only ids are read here, each bounds-checked (UncheckedEventId); a
    // lookup reads its entries back through a checking reader.
    reader_->set_check_events(false);
    indexed_next_.store(floor, std::memory_order_release);
  }
  if (floor > index_.floor()) Forget(floor);
  // Sequence numbers seen, folded into segment_seqs_ under the lock once per
  // run of one client in one segment.
  uint64_t run_segment = 0;
  ClientId run_client{};
  uint64_t run_seq = 0;
  std::vector<Position> new_checkpoints;
  auto flush_run = [&] {
    if (run_segment == 0) return;
    uint64_t& s = segment_seqs_[run_segment][run_client];
    s = std::max(s, run_seq);
  };
  auto publish = [&] {
    std::unique_lock<std::shared_mutex> lock(mu_);
    flush_run();
    run_segment = 0;
    for (const Position& p : new_checkpoints) checkpoints_.push_back(p);
    new_checkpoints.clear();
  };
  // Keys' inserts trail the reads by up to kInsertLag entries: each key's
  // slot is prefetched when it is read and written that many keys later, so
  // the cache misses of a large index overlap instead of coming one by one.
  // An entry counts as indexed once it and every entry before it are in
  // their index.
  constexpr size_t kInsertLag = 16;
  struct Held {
    uint64_t hash, lsn;
  };
  std::array<Held, kInsertLag> held;
  size_t held_first = 0, held_count = 0;
  auto insert_oldest = [&] {
    const Held& h = held[held_first];
    index_.Insert(h.hash, h.lsn);
    indexed_next_.store(h.lsn + 1, std::memory_order_release);
    held_first = (held_first + 1) % kInsertLag;
    --held_count;
  };
  char id_buf[wire::kMaxEventIdSize];
  Status s;
  uint64_t last_lsn = 0;
  while (*indexed < max) {
    const Position before = reader_->position();
    Entry e;
    if (reader_->Next(&e, &s) != TailReader::Result::kEntry) break;
    const uint64_t lsn = e.header.lsn;
    last_lsn = lsn;
    if (lsn % kCheckpointEvery == 0 || (checkpoints_.empty() && new_checkpoints.empty())) {
      new_checkpoints.push_back(Position{lsn, before.segment, before.offset});
    }
    const uint64_t segment = reader_->position().segment;
    ClientId client;
    std::copy(e.header.client_id, e.header.client_id + 16, client.begin());
    if (segment != run_segment || client != run_client) {
      if (run_segment != 0) {
        std::unique_lock<std::shared_mutex> lock(mu_);
        flush_run();
      }
      run_segment = segment;
      run_client = client;
      run_seq = 0;
    }
    run_seq = std::max(run_seq, e.header.seq);
    // The checkpoint that covers this entry is visible before the entry is.
    if (!new_checkpoints.empty() && new_checkpoints.back().next_lsn == lsn) publish();
    std::string_view id;
    bool keyed = false;
    if (!UncheckedEventId(e, id_buf, &id, &keyed)) {
      // Malformed: the sinks skip it and report it; nothing to find it by.
      ++*indexed;
      continue;
    }
    if (!keyed) {
      // Its receipt id is its client and seq: no need to hash the string.
      receipts_.Add(e.header.client_id, e.header.seq, lsn);
      if (held_count == 0) indexed_next_.store(lsn + 1, std::memory_order_release);
      ++*indexed;
      continue;
    }
    const uint64_t hash = hash_(id);
    index_.Prefetch(hash);
    if (held_count == kInsertLag) insert_oldest();
    held[(held_first + held_count) % kInsertLag] = Held{hash, lsn};
    ++held_count;
    ++*indexed;
  }
  while (held_count > 0) insert_oldest();
  if (last_lsn != 0) indexed_next_.store(last_lsn + 1, std::memory_order_release);
  publish();
  if (*indexed > 0) {
    std::lock_guard<std::mutex> lock(wait_mu_);
    indexed_cv_.notify_all();
  }
  return s;
}

void EventIndexer::Forget(uint64_t floor) {
  index_.Prune(floor);
  receipts_.Prune(floor);
  std::unique_lock<std::shared_mutex> lock(mu_);
  while (!checkpoints_.empty() && checkpoints_.front().next_lsn < floor) checkpoints_.pop_front();
  // Segment keys are first lsns: every one below the floor is gone.
  while (!segment_seqs_.empty() && segment_seqs_.begin()->first < floor) {
    for (const auto& [client, seq] : segment_seqs_.begin()->second) {
      uint64_t& d = deleted_seq_[client];
      d = std::max(d, seq);
    }
    segment_seqs_.erase(segment_seqs_.begin());
  }
}

bool EventIndexer::WaitIndexed(uint64_t lsn, int64_t timeout_us) const {
  std::unique_lock<std::mutex> lock(wait_mu_);
  return indexed_cv_.wait_for(lock, std::chrono::microseconds(timeout_us),
                              [&] { return indexed_next_lsn() >= lsn; });
}

Position EventIndexer::StartFor(uint64_t lsn) const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = std::upper_bound(checkpoints_.begin(), checkpoints_.end(), lsn,
                             [](uint64_t l, const Position& p) { return l < p.next_lsn; });
  if (it == checkpoints_.begin()) return Position{lsn, 0, 0};
  return *std::prev(it);
}

Status EventIndexer::ReadAt(uint64_t lsn, FoundEntry* out) const {
  const uint64_t first = log_->first_lsn();
  if (lsn < first || lsn >= log_->durable_next_lsn()) {
    return Status::NotFound("lsn " + std::to_string(lsn) + " is not in the retained log");
  }
  std::unique_ptr<TailReader> reader;
  Status s = log_->NewReader(StartFor(lsn), nullptr, &reader);
  if (!s.ok()) return s.IsNotFound() ? s : Status::NotFound(s.message());
  Entry e;
  while (reader->Next(&e, &s) == TailReader::Result::kEntry) {
    if (e.header.lsn > lsn) break;
    if (e.header.lsn == lsn) {
      out->header = e.header;
      out->event.assign(reinterpret_cast<const char*>(e.event), e.event_size);
      return Status::Ok();
    }
  }
  if (!s.ok()) return s;
  return Status::NotFound("lsn " + std::to_string(lsn) + " is not in the retained log");
}

Status EventIndexer::Find(std::string_view id, std::vector<FoundEntry>* out) const {
  out->clear();
  // Reached before the lookups, so that whatever they miss is past it.
  const uint64_t limit = indexed_next_lsn();
  char id_buf[wire::kMaxEventIdSize];
  // By key: every candidate slot, each read back and compared.
  std::vector<uint64_t> lsns;
  index_.Find(hash_(id), &lsns);
  for (uint64_t lsn : lsns) {
    FoundEntry f;
    Status s = ReadAt(lsn, &f);
    if (s.IsNotFound()) continue;  // deleted meanwhile
    if (!s.ok()) return s;
    Entry e;
    e.header = f.header;
    e.event = reinterpret_cast<const uint8_t*>(f.event.data());
    e.event_size = f.event.size();
    if (StoredEventId(e, id_buf) == id) out->push_back(std::move(f));
  }
  // By receipt id, when it has that form (a key may have it too).
  ClientId client;
  uint64_t seq = 0;
  if (wire::ParseEventId(id, client.data(), &seq)) {
    std::vector<ReceiptIndex::Range> ranges;
    receipts_.Candidates(client, seq, limit, &ranges);
    for (const ReceiptIndex::Range& r : ranges) {
      Status s = ScanFor(id, client, seq, r.from, r.to, out);
      if (!s.ok()) return s;
    }
  }
  std::sort(out->begin(), out->end(), [](const FoundEntry& a, const FoundEntry& b) {
    return a.header.lsn < b.header.lsn;
  });
  out->erase(std::unique(out->begin(), out->end(),
                         [](const FoundEntry& a, const FoundEntry& b) {
                           return a.header.lsn == b.header.lsn;
                         }),
             out->end());
  return Status::Ok();
}

Status EventIndexer::ScanFor(std::string_view id, const ClientId& client, uint64_t seq,
                             uint64_t from, uint64_t to, std::vector<FoundEntry>* out) const {
  from = std::max(from, log_->first_lsn());
  if (from >= to) return Status::Ok();
  std::unique_ptr<TailReader> reader;
  Status s = log_->NewReader(StartFor(from), nullptr, &reader);
  if (s.IsNotFound()) return Status::Ok();  // deleted meanwhile
  if (!s.ok()) return s;
  char id_buf[wire::kMaxEventIdSize];
  Entry e;
  while (reader->Next(&e, &s) == TailReader::Result::kEntry) {
    if (e.header.lsn >= to) break;
    if (e.header.lsn < from || e.header.seq != seq ||
        !std::equal(client.begin(), client.end(), e.header.client_id)) {
      continue;
    }
    if (StoredEventId(e, id_buf) != id) continue;  // keyed: found by its key
    FoundEntry f;
    f.header = e.header;
    f.event.assign(reinterpret_cast<const char*>(e.event), e.event_size);
    out->push_back(std::move(f));
    break;  // a run holds a seq once
  }
  return s;
}

bool EventIndexer::Expired(std::string_view id) const {
  ClientId client;
  uint64_t seq = 0;
  if (!wire::ParseEventId(id, client.data(), &seq)) return false;
  std::shared_lock<std::shared_mutex> lock(mu_);
  auto it = deleted_seq_.find(client);
  return it != deleted_seq_.end() && seq <= it->second;
}

uint64_t EventIndexer::entries() const {
  const uint64_t next = indexed_next_lsn(), floor = log_->first_lsn();
  return next > floor ? next - floor : 0;
}

size_t EventIndexer::memory_bytes() const {
  std::shared_lock<std::shared_mutex> lock(mu_);
  size_t n = index_.memory_bytes() + receipts_.memory_bytes() +
             checkpoints_.size() * sizeof(Position);
  for (const auto& [segment, clients] : segment_seqs_) n += 64 + clients.size() * 64;
  return n + deleted_seq_.size() * 64;
}

}  // namespace forkd::log
