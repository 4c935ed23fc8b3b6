// Ack level 'delivered': waiters per destination set, settled when every
// destination has delivered past the event, with the outcomes the pipelines
// noted for it (filtered, dead-lettered, shed). The ingest thread's; see
// ingest.h.
#include <algorithm>

#include "ingest/ingest.h"
#include "ingest/ingest_internal.h"

namespace forkd::ingest {
namespace {

// A delivered frame's trailer is sent once it lists this many events or
// bytes: well inside the decoder's limits and a client's largest message.
constexpr size_t kOutcomesPerFrame = 1024;
constexpr size_t kOutcomesBytesPerFrame = 1u << 20;

}  // namespace

using internal::AppendRange;

void Ingest::IndexWatches() {
  watches_.clear();
  if (outcomes_ == nullptr) return;
  for (size_t i = 0; i < config_->destinations.size() && i < 64; ++i) {
    watches_.push_back(outcomes_->For(config_->destinations[i].name));
  }
}

void Ingest::WatchOutcomes(uint64_t mask, uint64_t lsn, bool unwatch) {
  if (watches_.empty()) return;
  for (uint64_t m = mask; m != 0; m &= m - 1) {
    const auto i = static_cast<size_t>(__builtin_ctzll(m));
    if (i >= watches_.size()) continue;
    if (unwatch) {
      watches_[i]->Unwatch(lsn);
    } else {
      watches_[i]->Watch(lsn);
    }
  }
}

void Ingest::CheckDelivered() {
  if (waiter_count_ == 0) return;
  std::vector<uint32_t> touched;
  for (auto& [mask, queue] : waiters_) {
    uint64_t min_lsn = UINT64_MAX;
    for (size_t i = 0; i < 64 && i < config_->destinations.size(); ++i) {
      if (mask & (1ull << i)) {
        min_lsn = std::min(min_lsn, delivered_next_lsn_(config_->destinations[i].name));
      }
    }
    while (!queue.empty() && queue.front().lsn < min_lsn) {
      const Waiter w = queue.front();
      queue.pop_front();
      --waiter_count_;
      --clients_[w.client].waiting;
      // What each destination recorded for it; nothing means delivered.
      noted_outcomes_.clear();
      for (uint64_t m = watches_.empty() ? 0 : mask; m != 0; m &= m - 1) {
        const auto i = static_cast<size_t>(__builtin_ctzll(m));
        if (i >= watches_.size()) continue;
        pipeline::OutcomeWatch::Outcome o = watches_[i]->Take(w.lsn);
        if (o.kind == wire::OutcomeKind::kDelivered) continue;
        noted_outcomes_.push_back(
            wire::DestinationOutcome{config_->destinations[i].name, o.kind, std::move(o.reason)});
      }
      if (w.part != 0) {
        // One of the events a repeated key's call waits for: its outcomes
        // join the others', and the call settles with the last of them.
        auto& held = part_outcomes_[w.part];
        for (auto& o : noted_outcomes_) held.push_back(std::move(o));
        noted_outcomes_.clear();
        if (!PartDue(w.part)) continue;
        noted_outcomes_.swap(held);
        part_outcomes_.erase(w.part);
      }
      Client& c = clients_[w.client];
      if (!noted_outcomes_.empty() && !c.outcomes) {
        // A client that reads no outcomes: a filter is no error to it, as
        // before; a record not stored is, with the same words.
        std::string message;
        for (const auto& o : noted_outcomes_) {
          if (o.kind == wire::OutcomeKind::kFiltered) continue;
          message += (message.empty() ? "" : "; ") + wire::DescribeOutcome(o);
        }
        noted_outcomes_.clear();
        if (!message.empty()) {
          Nack(w.client, w.seq, w.seq, wire::kCodeRejected, message);
          continue;
        }
      }
      stats_.delivered.fetch_add(1, std::memory_order_relaxed);
      if (c.delivered_out.empty()) touched.push_back(w.client);
      AppendRange(&c.delivered_out, w.seq);
      if (!noted_outcomes_.empty()) {
        for (const auto& o : noted_outcomes_) {
          c.outcomes_bytes += 16 + o.destination.size() + o.reason.size();
        }
        c.outcomes_out.push_back(wire::EventOutcomes{w.seq, noted_outcomes_});
        if (c.outcomes_out.size() >= kOutcomesPerFrame ||
            c.outcomes_bytes >= kOutcomesBytesPerFrame) {
          SendRanges(w.client, &c.delivered_out, true);
        }
      }
    }
  }
  for (uint32_t ci : touched) SendRanges(ci, &clients_[ci].delivered_out, true);
}

void Ingest::ForgetPart(uint64_t part) {
  parts_left_.erase(part);
  part_outcomes_.erase(part);
}

bool Ingest::PartDue(uint64_t part) {
  auto it = parts_left_.find(part);
  if (it == parts_left_.end()) {  // its event was nacked
    part_outcomes_.erase(part);
    return false;
  }
  if (--it->second > 0) return false;
  parts_left_.erase(it);
  return true;
}

}  // namespace forkd::ingest
