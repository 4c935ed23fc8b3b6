// Idempotency keys: remembered per (destination, key) for the dedupe window,
// in memory and in the key journal, and relearnt at start from the journal
// and the log's tail (with each client's sequence numbers). The ingest
// thread's; see ingest.h.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/clock.h"
#include "ingest/ingest.h"
#include "ingest/ingest_internal.h"

namespace forkd::ingest {

using internal::SplitPair;

const std::string& Ingest::PairKey(std::string_view dest, std::string_view key) {
  key_scratch_.assign(dest);
  key_scratch_.push_back('\0');
  key_scratch_.append(key);
  return key_scratch_;
}

void Ingest::EraseKey(std::unordered_map<std::string, KeyEntry>::iterator it) {
  if (it->first.front() == '\0') --all_dest_keys_;
  keys_.erase(it);
}

void Ingest::RememberKey(std::string_view dest, std::string_view key, uint64_t lsn,
                         int64_t recv_us) {
  if (config_->dedupe_max_keys <= 0) return;
  auto [it, inserted] = keys_.try_emplace(PairKey(dest, key), KeyEntry{lsn, recv_us});
  if (!inserted) {
    it->second = KeyEntry{lsn, recv_us};
    return;
  }
  if (dest.empty()) ++all_dest_keys_;
  key_order_.emplace_back(recv_us, it->first);
  while (key_order_.size() > static_cast<size_t>(config_->dedupe_max_keys)) {
    auto found = keys_.find(key_order_.front().second);
    if (found != keys_.end() && found->second.recv_us == key_order_.front().first) {
      EraseKey(found);
    }
    key_order_.pop_front();
  }
}

void Ingest::ExpireKeys(int64_t now_us) {
  // The deque is in time order.
  const int64_t horizon = now_us - config_->dedupe_window_ms * 1000;
  while (!key_order_.empty() && key_order_.front().first < horizon) {
    auto found = keys_.find(key_order_.front().second);
    if (found != keys_.end() && found->second.recv_us == key_order_.front().first) {
      EraseKey(found);
    }
    key_order_.pop_front();
  }
}

uint64_t Ingest::LookupKey(std::string_view dest, std::string_view key) {
  if (keys_.empty()) return 0;
  uint64_t lsn = 0;
  auto it = keys_.find(PairKey(dest, key));
  if (it != keys_.end()) lsn = it->second.lsn;
  if (all_dest_keys_ > 0) {
    it = keys_.find(PairKey({}, key));
    if (it != keys_.end()) lsn = std::max(lsn, it->second.lsn);
  }
  return lsn;
}

Status Ingest::Recover() {
  const int64_t t0 = MonoMicros();
  uint64_t start = log_->RecentStart(static_cast<uint64_t>(config_->dedupe_recover_bytes));
  completed_next_lsn_ = log_->durable_next_lsn();
  if (config_->dedupe_max_keys > 0) {
    journal_ = std::make_unique<KeyJournal>(config_->data_dir + "/dedupe");
    const int64_t horizon = WallMicros() - config_->dedupe_window_ms * 1000;
    uint64_t journal_next = 0;
    s_journal_keys_ = 0;
    Status js = journal_->Open(
        [&](std::string_view key, std::string_view dest, uint64_t lsn, int64_t recv_us) {
          if (recv_us >= horizon) {
            RememberKey(dest, key, lsn, recv_us);
            ++s_journal_keys_;
          }
        },
        &journal_next);
    if (!js.ok()) return js;
    // Keys after the journal's last sync are only in the log: scan from there.
    start = std::min(start, std::max<uint64_t>(journal_next, 1));
    retain_from_lsn_.store(std::max<uint64_t>(journal_next, 1));
  } else {
    retain_from_lsn_.store(UINT64_MAX);
  }
  std::unique_ptr<log::TailReader> reader;
  Status s = log_->NewReader(log::Position{start, 0, 0}, nullptr, &reader);
  if (!s.ok()) return s;
  uint64_t entries = 0;
  log::Entry e;
  while (reader->Next(&e, &s) == log::TailReader::Result::kEntry) {
    // Past limits.max_clients the least recently seen go: nothing of theirs
    // is in flight yet.
    const uint32_t ci = ClientFor(e.header.client_id, wire::kClientIdSize);
    if (ci != kNoClient) {
      clients_[ci].taken.Add(e.header.seq);
      clients_[ci].durable.Add(e.header.seq);
    }
    wire::Reader rd(e.event, e.event_size);
    rd.Next();  // [dests, key, options, payload]
    const uint8_t* dests = rd.pos();
    rd.Skip();
    const wire::Value k = rd.Next();
    if (k.kind == wire::Kind::kStr) {
      // The stored list is the one the event went to (routes applied, and
      // destinations that had the key already left out).
      wire::Reader dr(dests, static_cast<size_t>(e.event + e.event_size - dests));
      const wire::Value d = dr.Next();
      for (uint32_t i = 0; d.kind == wire::Kind::kArray && i < d.len; ++i) {
        wire::Value name = dr.Next();
        if (name.kind == wire::Kind::kArray) {  // [name, template...]
          const uint32_t n = name.len;
          name = dr.Next();
          for (uint32_t t = 1; t < n; ++t) dr.Skip();
        }
        if (name.kind == wire::Kind::kStr) {
          RememberKey(name.str(), k.str(), e.header.lsn, e.header.recv_us);
        }
      }
    }
    ++entries;
  }
  if (!s.ok()) return s;
  spdlog::info("dedupe: remembered {} clients and {} (idempotency key, destination) pairs from "
               "{} recent entries in {} ms",
               client_count_, keys_.size(), entries, (MonoMicros() - t0) / 1000);
  if (journal_) {
    // Start each run with a journal of only the live keys.
    Status js = journal_->Rewrite(
        [&](const KeyJournal::Each& emit) {
          for (const auto& [recv_us, pair] : key_order_) {
            auto it = keys_.find(pair);
            if (it != keys_.end() && it->second.recv_us == recv_us) {
              const auto [dest, key] = SplitPair(pair);
              emit(key, dest, it->second.lsn, recv_us);
            }
          }
        },
        completed_next_lsn_);
    if (!js.ok()) return js;
    retain_from_lsn_.store(completed_next_lsn_);
  }
  return Status::Ok();
}

void Ingest::SyncJournal(bool force) {
  if (!journal_) return;
  const int64_t now = MonoMicros();
  if (!force && now - last_journal_sync_us_ < 1000000) return;
  last_journal_sync_us_ = now;
  if (completed_next_lsn_ <= journal_->synced_next_lsn() && !journal_->dirty()) return;
  Status s = journal_->Sync(completed_next_lsn_);
  if (!s.ok()) {
    // The segments it would cover stay until a later sync succeeds.
    spdlog::warn("dedupe: key journal: {}", s.message());
    return;
  }
  retain_from_lsn_.store(journal_->synced_next_lsn(), std::memory_order_release);
  // Keep the journal near the number of live keys.
  if (journal_->records() > 2 * keys_.size() + 10000) {
    Status rs = journal_->Rewrite(
        [&](const KeyJournal::Each& emit) {
          for (const auto& [recv_us, pair] : key_order_) {
            auto it = keys_.find(pair);
            if (it != keys_.end() && it->second.recv_us == recv_us &&
                it->second.lsn < completed_next_lsn_) {
              const auto [dest, key] = SplitPair(pair);
              emit(key, dest, it->second.lsn, recv_us);
            }
          }
        },
        completed_next_lsn_);
    if (!rs.ok()) spdlog::warn("dedupe: key journal rewrite: {}", rs.message());
  }
}

}  // namespace forkd::ingest
