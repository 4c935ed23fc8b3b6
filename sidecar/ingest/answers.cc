// Ingest's answers to clients: committing what was appended (MaybeCommit),
// the acks sent once it is durable (HandleCompletion, SendRanges), and the
// nacks and refusals of events it did not take. ingest.cc reads the frames.
#include <spdlog/spdlog.h>
#include <zmq.h>

#include <algorithm>
#include <string>
#include <utility>

#include "core/clock.h"
#include "ingest/ingest.h"
#include "ingest/ingest_internal.h"

namespace forkd::ingest {

using internal::AppendRange;
using internal::SplitPair;

void Ingest::MaybeCommit(bool force) {
  if (log_->commit_in_flight() || log_->pending_entries() == 0) return;
  const int64_t age_us = MonoMicros() - pending_since_us_;
  const size_t held = HeldBytes();
  if (!force && age_us < config_->batch_ms * 1000 && log_->pending_bytes() < commit_bytes_ &&
      held < static_cast<size_t>(config_->max_pending)) {
    return;
  }
  uint64_t generation;
  if (log_->StartCommit(&generation)) {
    in_flight_acks_.swap(pending_acks_);
    in_flight_held_ = held;
  }
  pending_acks_.clear();
}

void Ingest::HandleCompletion() {
  log::CommitResult done, pending_failed;
  while (log_->TakeCompletion(&done, &pending_failed)) {
    if (done.status.ok()) {
      for (const PendingAck& a : in_flight_acks_) {
        Client& c = clients_[a.client];
        c.durable.Add(a.seq);
        if (c.ack_out.empty()) touched_.push_back(a.client);
        AppendRange(&c.ack_out, a.seq);
        if (a.dest_mask != 0) {
          waiters_[a.dest_mask].push_back(Waiter{a.lsn, a.client, a.seq, a.part});
          ++waiter_count_;
          ++c.waiting;
        }
      }
      stats_.acked.fetch_add(in_flight_acks_.size(), std::memory_order_relaxed);
      completed_next_lsn_ = done.last_lsn + 1;
      for (auto it = injected_.begin(); it != injected_.end();) {
        if ((*it)->last_lsn <= done.last_lsn) {
          (*it)->done.set_value(Status::Ok());
          it = injected_.erase(it);
        } else {
          ++it;
        }
      }
      while (!journal_pending_.empty() && journal_pending_.front().lsn <= done.last_lsn) {
        const JournalEntry& j = journal_pending_.front();
        const auto [dest, key] = SplitPair(j.pair);
        journal_->Add(key, dest, j.lsn, j.recv_us);
        journal_pending_.pop_front();
      }
    } else {
      // Nothing of the batch is in the log: say so, and forget the seqs so
      // that a resend is taken afresh.
      spdlog::error("{}; rejecting {} events", done.status.message(),
                    in_flight_acks_.size() + pending_acks_.size());
      auto fail = [&](std::vector<PendingAck>& acks) {
        for (const PendingAck& a : acks) {
          if (a.part != 0) ForgetPart(a.part);
          WatchOutcomes(a.dest_mask, a.lsn, /*unwatch=*/true);  // the lsn will be reused
          clients_[a.client].taken.Remove(a.seq, a.seq);
          Nack(a.client, a.seq, a.seq, wire::kCodeRejected, done.status.message());
        }
        acks.clear();
      };
      fail(in_flight_acks_);
      for (auto it = injected_.begin(); it != injected_.end();) {
        if ((*it)->last_lsn >= done.first_lsn) {
          (*it)->done.set_value(Status::IoError(done.status.message()));
          it = injected_.erase(it);
        } else {
          ++it;
        }
      }
      if (pending_failed.last_lsn >= pending_failed.first_lsn && pending_failed.first_lsn != 0) {
        fail(pending_acks_);
      }
      // Keys of the failed events are forgotten (their lsns will be reused),
      // and repeats that waited for them fail with them.
      while (!key_order_.empty()) {
        auto it = keys_.find(key_order_.back().second);
        if (it != keys_.end() && it->second.lsn < done.first_lsn) break;
        if (it != keys_.end()) EraseKey(it);
        key_order_.pop_back();
      }
      while (!journal_pending_.empty() && journal_pending_.back().lsn >= done.first_lsn) {
        journal_pending_.pop_back();
      }
      std::vector<PendingAck> still;
      for (const PendingAck& a : deferred_acks_) {
        if (a.lsn >= done.first_lsn) {
          if (a.part != 0) ForgetPart(a.part);
          clients_[a.client].taken.Remove(a.seq, a.seq);
          Nack(a.client, a.seq, a.seq, wire::kCodeRejected, done.status.message());
        } else {
          still.push_back(a);
        }
      }
      deferred_acks_.swap(still);
    }
    in_flight_acks_.clear();
    in_flight_held_ = 0;
  }
  if (!deferred_acks_.empty()) {
    const uint64_t durable = log_->durable_next_lsn();
    size_t kept = 0;
    for (const PendingAck& a : deferred_acks_) {
      if (a.lsn < durable) {
        Client& c = clients_[a.client];
        c.durable.Add(a.seq);
        if (c.ack_out.empty()) touched_.push_back(a.client);
        AppendRange(&c.ack_out, a.seq);
      } else {
        deferred_acks_[kept++] = a;
      }
    }
    deferred_acks_.resize(kept);
  }
  for (uint32_t ci : touched_) SendRanges(ci, &clients_[ci].ack_out, false);
  touched_.clear();
}

void Ingest::Send(const std::string& identity, const wire::Buffer& frame) {
  // A client that went away is not an error: it resends after reconnecting.
  if (zmq_send(socket_, identity.data(), identity.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
  zmq_send(socket_, frame.data(), frame.size(), ZMQ_DONTWAIT);
}

void Ingest::NackTo(std::string_view identity, uint64_t first, uint64_t last, const char* code,
                    const std::string& message) {
  out_.clear();
  wire::EncodeNack(wire::Nack{{first, last}, code, message}, &out_);
  if (zmq_send(socket_, identity.data(), identity.size(), ZMQ_SNDMORE | ZMQ_DONTWAIT) < 0) return;
  zmq_send(socket_, out_.data(), out_.size(), ZMQ_DONTWAIT);
}

void Ingest::Nack(uint32_t client, uint64_t first, uint64_t last, const char* code,
                  const std::string& message) {
  NackTo(clients_[client].identity, first, last, code, message);
  stats_.nacked.fetch_add(last - first + 1, std::memory_order_relaxed);
}

void Ingest::Refuse(uint32_t client, uint64_t seq, const char* code, std::string* message) {
  Refusal& r = refusal_;
  if (r.client == client && r.last + 1 == seq && std::strcmp(r.code, code) == 0 &&
      r.message == *message) {
    r.last = seq;
    return;
  }
  FlushRefusal();
  r.client = client;
  r.first = r.last = seq;
  r.code = code;
  r.message.swap(*message);
  ++refusals_in_frame_;
}

void Ingest::FlushRefusal() {
  if (refusal_.client == kNoClient) return;
  Nack(refusal_.client, refusal_.first, refusal_.last, refusal_.code, refusal_.message);
  refusal_.client = kNoClient;
}

void Ingest::SendRanges(uint32_t client, std::vector<wire::SeqRange>* ranges, bool delivered) {
  if (ranges->empty()) return;
  out_.clear();
  if (delivered) {
    wire::Delivered d;
    d.ranges.swap(*ranges);
    d.outcomes.swap(clients_[client].outcomes_out);
    std::sort(d.outcomes.begin(), d.outcomes.end(),
              [](const wire::EventOutcomes& a, const wire::EventOutcomes& b) {
                return a.seq < b.seq;  // the trailer's order
              });
    wire::EncodeDelivered(d, &out_);
    // The vectors go back, emptied, to be reused.
    d.ranges.clear();
    d.outcomes.clear();
    ranges->swap(d.ranges);
    clients_[client].outcomes_out.swap(d.outcomes);
    clients_[client].outcomes_bytes = 0;
  } else {
    Client& c = clients_[client];
    std::vector<wire::Routed> routed;
    if (!c.routed.empty()) {
      for (const wire::SeqRange& r : *ranges) {
        for (auto it = c.routed.lower_bound(r.first); it != c.routed.end() && it->first <= r.last;) {
          wire::Routed x;
          x.seq = it->first;
          for (size_t i = 0; i < config_->destinations.size() && i < 64; ++i) {
            if (it->second & (1ull << i)) x.destinations.push_back(config_->destinations[i].name);
          }
          routed.push_back(std::move(x));
          it = c.routed.erase(it);
        }
      }
    }
    wire::EncodeAck(wire::Ack{*ranges, std::move(routed)}, &out_);
  }
  Send(clients_[client].identity, out_);
  ranges->clear();
}

}  // namespace forkd::ingest
