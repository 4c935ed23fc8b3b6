// Pipelined delivery: several batches on their way to the store at once,
// for sinks that say they can take them so (Sink::pipelines). The write loop
// in pipeline.cc reads a batch and calls SendBatch; the flights are answered
// in the order sent, and the cursor only ever moves past a range once it and
// every range before it are answered. A flight that fails does not retry on
// its own: the ones after it are awaited and forgotten, the reader goes back
// to its start, and that batch is delivered by FlushBatch (retries, backoff,
// the breaker, splitting and dead letters, as without pipelining). The
// failure itself counts toward the breaker, as a failed Flush does. Batches
// after it that did land are sent again, which the sinks that pipeline
// absorb.
#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/clock.h"
#include "pipeline/pipeline.h"

namespace forkd::pipeline {

std::string InFlightIgnored(const DestinationConfig& d, const sinks::Sink& sink) {
  // An aggregate's windows are state that each batch carries forward.
  if (d.chain.aggregate) return "a destination with an aggregate step is not pipelined";
  if (!sink.pipelines()) return "the " + d.type + " sink does not pipeline (or not in this mode)";
  return "";
}

Pipeline::Counted Pipeline::CountedNow() const {
  return Counted{stats_.read.load(std::memory_order_relaxed),
                 stats_.filtered.load(std::memory_order_relaxed),
                 stats_.failed_transform.load(std::memory_order_relaxed)};
}

Pipeline::Flushed Pipeline::SendBatch(const log::Position& start, const log::Position& end,
                                      int64_t n, uint64_t consumed, const Counted& before,
                                      bool settle) {
  Flight f;
  f.consumed = consumed;
  f.start = start;
  f.end = end;
  f.read0 = before.read;
  f.filtered0 = before.filtered;
  f.failed_transform0 = before.failed_transform;
  if (n > 0 && resend_) {
    // The batch a flight failed on: by Flush, the way a batch goes without
    // pipelining, after the wait the store asked for. Flights resume once
    // it is delivered.
    if (resend_wait_ms_ > 0) {
      bool shed = false;
      const int64_t wait = std::min(resend_wait_ms_, dest_.retry_max_ms);
      resend_wait_ms_ = 0;
      if (!WaitRetry(wait, &shed)) {
        sink_->Discard();
        if (!shed) return Flushed::kStopped;
        Shed(start);
        return Flushed::kShed;
      }
    }
    const Flushed r = FlushBatch(start, end, n);
    if (r != Flushed::kDone) return r;
    resend_ = false;
    f.flushed = true;
  } else if (n > 0) {
    f.ticket = next_ticket_++;
    f.n = n;
    f.bytes = sink_->buffered_bytes();
    f.send = sink_->Send(f.ticket);
    if (f.send.ok()) {
      ++sending_;
      stats_.in_flight.store(sending_, std::memory_order_relaxed);
    } else {
      sink_->Discard();
    }
  }
  f.dead_letters.swap(pending_dl_);
  f.dead_letter_count = pending_dl_count_;
  pending_dl_count_ = 0;
  // A Send that failed: everything before it is answered now, then it.
  if (!f.send.ok()) settle = true;
  // Nothing read (a rate limit, or caught up with flights on their way):
  // no range to queue.
  if (f.ticket != 0 || f.consumed > 0 || f.dead_letter_count > 0) flights_.push_back(std::move(f));
  // The oldest are answered while too many are on their way, and a range
  // with nothing sent as soon as it is the oldest.
  while (!flights_.empty()) {
    const Flight& front = flights_.front();
    const bool due = settle || front.ticket == 0 || sending_ >= in_flight_;
    if (!due) break;
    const Flushed r = Reap();
    if (r != Flushed::kDone) return r;
  }
  return Flushed::kDone;
}

Pipeline::Flushed Pipeline::ReapAll() {
  while (!flights_.empty()) {
    const Flushed r = Reap();
    if (r != Flushed::kDone) return r;
  }
  return Flushed::kDone;
}

Pipeline::Flushed Pipeline::Reap() {
  Flight f = std::move(flights_.front());
  flights_.pop_front();
  Status s = f.send;
  if (f.ticket != 0 && f.send.ok()) {
    s = sink_->Await(f.ticket);
    --sending_;
    stats_.in_flight.store(sending_, std::memory_order_relaxed);
  }
  if (f.ticket != 0) stats_.flushes.fetch_add(1, std::memory_order_relaxed);
  if (s.ok()) {
    if (f.ticket != 0) {
      stats_.received.fetch_add(static_cast<uint64_t>(f.n), std::memory_order_relaxed);
      stats_.delivered.fetch_add(static_cast<uint64_t>(f.n), std::memory_order_relaxed);
      stats_.delivered_bytes.fetch_add(f.bytes, std::memory_order_relaxed);
      if (breaker_.state() == Breaker::State::kHalfOpen) {
        spdlog::info("destination {}: probe succeeded; breaker closed", name_);
      }
      breaker_.Succeeded();
      healthy_.store(true);
    }
    pending_dl_.append(f.dead_letters);
    pending_dl_count_ += f.dead_letter_count;
    Delivered(f.end, f.ticket != 0 || f.flushed);
    return Flushed::kDone;
  }
  // Failed. The flights after it are awaited (a sink answers every ticket)
  // and forgotten, with what was read for them; the batch is read again,
  // which for a retry is its first retry (a refusal is split instead).
  stats_.failed.fetch_add(1, std::memory_order_relaxed);
  SetError(s.message());
  // The breaker counts it as it counts a failed Flush: an outage when the
  // store did not answer, a store that works when it refused the records.
  if (s.IsFatal()) {
    breaker_.Succeeded();
  } else {
    stats_.retries.fetch_add(1, std::memory_order_relaxed);
    BreakerFailed(MonoMicros() / 1000, s.message());
  }
  size_t dropped = 0;
  for (Flight& later : flights_) {
    if (later.ticket != 0 && later.send.ok()) (void)sink_->Await(later.ticket);
    dropped += later.ticket != 0 ? 1 : 0;
  }
  flights_.clear();
  sending_ = 0;
  stats_.in_flight.store(0, std::memory_order_relaxed);
  sink_->Discard();
  stats_.resends.fetch_add(dropped + 1, std::memory_order_relaxed);
  stats_.read.store(f.read0, std::memory_order_relaxed);
  stats_.filtered.store(f.filtered0, std::memory_order_relaxed);
  stats_.failed_transform.store(f.failed_transform0, std::memory_order_relaxed);
  // Notes about records from the failed range on are made again as it is read.
  noted_.erase(std::remove_if(noted_.begin(), noted_.end(),
                              [&](const NotedOutcome& o) { return o.first >= f.start.next_lsn; }),
               noted_.end());
  spdlog::warn("destination {}: a pipelined batch of {} failed ({}); delivering from lsn {} again, "
               "one batch at a time until it is through",
               name_, f.n, s.message(), f.start.next_lsn);
  const Status rs = log_->NewReader(f.start, this, &reader_);
  if (!rs.ok()) {
    // The range cannot be read again now: stop here; a restart delivers it
    // from the committed cursor.
    SetError("log read: " + rs.message());
    spdlog::error("destination {}: cannot read the log again at lsn {}: {}", name_,
                  f.start.next_lsn, rs.message());
    return Flushed::kStopped;
  }
  resend_ = true;
  resend_wait_ms_ = s.IsRetry() ? sink_->retry_after_ms() : 0;
  return Flushed::kRewound;
}

void Pipeline::Delivered(const log::Position& end, bool sent) {
  const int64_t now = MonoMicros();
  const bool defer = (sink_->idempotent() || !sent) && pending_dl_.empty() && !stop_.load() &&
                     now - last_commit_us_ < kIdempotentCommitUs;
  if (defer) {
    uncommitted_ = true;
    Advance(end);
    return;
  }
  if (Commit(end).ok()) {
    last_commit_us_ = now;
    uncommitted_ = false;
    Advance(end);
  } else {
    uncommitted_ = true;  // the idle loop commits again, then advances
  }
}

}  // namespace forkd::pipeline
