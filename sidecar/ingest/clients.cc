// Client bookkeeping: one Client per routing id that said hello (or that
// Recover found in the log), in order of last activity, forgotten when idle
// or to make room past limits.max_clients — only once nothing of theirs is in
// flight. To make room, the youngest of the least recently active goes: a
// peer that churns through client ids then evicts its own, not a
// long-lived client that happens to sit between two calls. The ingest
// thread's; see ingest.h.
#include <spdlog/spdlog.h>

#include "core/clock.h"
#include "ingest/ingest.h"

namespace forkd::ingest {
namespace {

// The least recently active clients one eviction looks at: what a hello
// costs when the table is full.
constexpr int kEvictScan = 64;
constexpr int64_t kIdleSweepUs = 1000000;
constexpr int64_t kEvictWarningUs = 10000000;

}  // namespace

uint32_t Ingest::FindClient(const uint8_t* id, size_t size) {
  auto it = client_index_.find(std::string_view(reinterpret_cast<const char*>(id), size));
  return it == client_index_.end() ? kNoClient : it->second;
}

uint32_t Ingest::ClientFor(const uint8_t* id, size_t size) {
  const uint32_t found = FindClient(id, size);
  if (found != kNoClient) return found;
  const int64_t now_us = MonoMicros();
  if (client_count_ >= static_cast<size_t>(config_->max_clients) && !EvictOne(now_us)) {
    return kNoClient;
  }
  uint32_t ci;
  if (!free_clients_.empty()) {
    ci = free_clients_.back();
    free_clients_.pop_back();
  } else {
    ci = static_cast<uint32_t>(clients_.size());
    clients_.emplace_back();
  }
  Client& c = clients_[ci];
  c.identity.assign(reinterpret_cast<const char*>(id), size);
  c.active_us = now_us;
  c.created_us = now_us;
  LruPushBack(ci);
  client_index_.emplace(c.identity, ci);
  ++client_count_;
  stats_.clients.store(client_count_, std::memory_order_relaxed);
  return ci;
}

bool Ingest::Forgettable(const Client& c) const {
  // taken == durable: nothing pending, being committed, or waiting on an
  // earlier event with its key; the acks of all of it have been sent.
  return c.waiting == 0 && c.ack_out.empty() && c.delivered_out.empty() &&
         c.outcomes_out.empty() && c.taken == c.durable;
}

void Ingest::Forget(uint32_t ci) {
  client_index_.erase(clients_[ci].identity);
  LruUnlink(ci);
  clients_[ci] = Client{};  // gives its memory back
  free_clients_.push_back(ci);
  --client_count_;
  stats_.clients.store(client_count_, std::memory_order_relaxed);
  stats_.forgotten_clients.fetch_add(1, std::memory_order_relaxed);
}

bool Ingest::EvictOne(int64_t now_us) {
  // Of the kEvictScan least recently active clients with nothing in flight,
  // the one created last.
  uint32_t pick = kNoClient;
  uint32_t ci = lru_head_;
  for (int i = 0; i < kEvictScan && ci != kNoClient; ++i, ci = clients_[ci].lru_next) {
    const Client& c = clients_[ci];
    if (!Forgettable(c)) continue;  // events in flight: it stays
    if (pick == kNoClient || c.created_us > clients_[pick].created_us) pick = ci;
  }
  if (pick == kNoClient) return false;
  const Client& c = clients_[pick];
  const int64_t idle_us = now_us - c.active_us;
  if (!c.taken.ranges().empty() && idle_us < config_->client_idle_ms * 1000 &&
      now_us - last_evict_warning_us_ >= kEvictWarningUs) {
    // Its sequence numbers go early: a resend of an event it already had
    // acked would now be taken as new. Only a lost ack makes a client
    // resend, so this needs both a full table and bad luck; say so.
    last_evict_warning_us_ = now_us;
    spdlog::warn("limits.max_clients ({}) reached: forgetting a client active {} s ago; were "
                 "it to resend events already acknowledged, they would be taken again",
                 config_->max_clients, idle_us / 1000000);
  }
  Forget(pick);
  return true;
}

void Ingest::ForgetIdleClients(int64_t now_us) {
  if (now_us - last_idle_sweep_us_ < kIdleSweepUs) return;
  last_idle_sweep_us_ = now_us;
  const int64_t horizon = now_us - config_->client_idle_ms * 1000;
  // Oldest first: stops at the first client active since the horizon.
  // Clients with something in flight are passed over, to be looked at again.
  for (uint32_t ci = lru_head_; ci != kNoClient;) {
    const Client& c = clients_[ci];
    if (c.active_us >= horizon) break;
    const uint32_t next = c.lru_next;
    if (Forgettable(c)) Forget(ci);
    ci = next;
  }
}

void Ingest::Touch(uint32_t ci, int64_t now_us) {
  clients_[ci].active_us = now_us;
  if (lru_tail_ == ci) return;
  LruUnlink(ci);
  LruPushBack(ci);
}

void Ingest::LruUnlink(uint32_t ci) {
  Client& c = clients_[ci];
  if (c.lru_prev != kNoClient) {
    clients_[c.lru_prev].lru_next = c.lru_next;
  } else {
    lru_head_ = c.lru_next;
  }
  if (c.lru_next != kNoClient) {
    clients_[c.lru_next].lru_prev = c.lru_prev;
  } else {
    lru_tail_ = c.lru_prev;
  }
  c.lru_prev = c.lru_next = kNoClient;
}

void Ingest::LruPushBack(uint32_t ci) {
  Client& c = clients_[ci];
  c.lru_prev = lru_tail_;
  c.lru_next = kNoClient;
  if (lru_tail_ != kNoClient) {
    clients_[lru_tail_].lru_next = ci;
  } else {
    lru_head_ = ci;
  }
  lru_tail_ = ci;
}

}  // namespace forkd::ingest
