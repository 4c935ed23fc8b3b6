// The pipeline's failure paths: flushing with retries, backoff and the
// breaker (Deliver); splitting a refused batch to find the records the store
// refuses (Bisect); sending what cannot be delivered to dead letters
// (DeadLetterRange); and skipping past a backlog quota (Shed). The write loop
// that calls them is in pipeline.cc.
#include "pipeline/pipeline.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <random>

#include "core/clock.h"
#include "wire/random.h"

namespace forkd::pipeline {

Pipeline::Delivery Pipeline::Deliver() {
  static thread_local std::mt19937_64 rng{wire::RandomU64()};
  Backoff backoff(Backoff::Policy{dest_.retry_initial_ms, dest_.retry_max_ms,
                                  dest_.retry_max_attempts, dest_.retry_max_age_ms});
  Delivery d;
  auto fill = [&](Delivery::Kind k) {
    attempts_.store(0, std::memory_order_relaxed);
    d.kind = k;
    d.attempts = backoff.attempts();
    d.first_error = backoff.first_error();
    d.last_error = backoff.last_error();
    return d;
  };
  while (true) {
    // An open breaker lets nothing through until its cooldown has passed.
    if (const int64_t wait = breaker_.WaitMs(MonoMicros() / 1000); wait > 0) {
      bool shed = false;
      if (!WaitRetry(wait, &shed)) return fill(shed ? Delivery::kShed : Delivery::kStopped);
      continue;
    }
    const Breaker::State was = breaker_.state();
    Status s = sink_->Flush();
    stats_.flushes.fetch_add(1, std::memory_order_relaxed);
    if (s.ok()) {
      if (was == Breaker::State::kHalfOpen) {
        spdlog::info("destination {}: probe succeeded; breaker closed", name_);
      }
      breaker_.Succeeded();
      healthy_.store(true);
      return fill(Delivery::kOk);
    }
    stats_.failed.fetch_add(1, std::memory_order_relaxed);
    SetError(s.message());
    const int64_t now_ms = MonoMicros() / 1000;
    if (s.IsFatal()) {
      // The store answered, and refuses these records: not an outage.
      breaker_.Succeeded();
      d.error = s.message();
      backoff.Failed(now_ms, s.message());
      return fill(Delivery::kFatal);
    }
    backoff.Failed(now_ms, s.message());
    attempts_.store(backoff.attempts(), std::memory_order_relaxed);
    BreakerFailed(now_ms, s.message());
    if (backoff.Exhausted(now_ms)) {
      d.error = "gave up after " + std::to_string(backoff.attempts()) + " attempts in " +
                std::to_string(now_ms - backoff.first_ms()) + " ms: " + s.message();
      stats_.gave_up.fetch_add(1, std::memory_order_relaxed);
      return fill(Delivery::kGaveUp);
    }
    const int64_t wait = backoff.NextWaitMs(
        std::uniform_real_distribution<double>(0.0, 1.0)(rng), sink_->retry_after_ms());
    if (backoff.attempts() == 1 || backoff.attempts() % 10 == 0) {
      spdlog::warn("destination {}: flush failed (attempt {}), retrying in {} ms: {}", name_,
                   backoff.attempts(), wait, s.message());
    }
    stats_.retries.fetch_add(1, std::memory_order_relaxed);
    bool shed = false;
    if (!WaitRetry(wait, &shed)) return fill(shed ? Delivery::kShed : Delivery::kStopped);
  }
}

void Pipeline::BreakerFailed(int64_t now_ms, const std::string& error) {
  if (breaker_.Failed(now_ms)) {
    spdlog::warn("destination {}: breaker open after {} consecutive failures; next probe in "
                 "{} ms: {}",
                 name_, dest_.breaker_failures, dest_.breaker_cooldown_ms, error);
  }
}

Status Pipeline::FlushWithRetry() {
  const Delivery d = Deliver();
  switch (d.kind) {
    case Delivery::kOk: return Status::Ok();
    case Delivery::kFatal: return Status::Fatal(d.error);
    case Delivery::kGaveUp: return Status::Fatal(d.error);
    default: return Status::Retry("stopped while retrying: " + d.last_error);
  }
}

bool Pipeline::WaitRetry(int64_t ms, bool* shed) {
  const int64_t until = MonoMicros() + ms * 1000;
  while (true) {
    if (ShedDue()) {
      *shed = true;
      return false;
    }
    const int64_t left_ms = (until - MonoMicros()) / 1000;
    if (left_ms <= 0) return true;
    if (!SleepInterruptible(std::min<int64_t>(left_ms, 250))) return false;
  }
}

uint64_t Pipeline::held_events() const {
  const uint64_t end = log_->durable_next_lsn();
  return end - std::min(end, committed_next_lsn());
}

uint64_t Pipeline::held_bytes() const {
  return log_->BytesFrom(log::Position{committed_next_lsn(), committed_segment_.load(),
                                       committed_offset_.load()});
}

double Pipeline::backlog_fill() const {
  double fill = 0;
  if (dest_.backlog_max_events > 0) {
    fill = static_cast<double>(held_events()) / static_cast<double>(dest_.backlog_max_events);
  }
  if (dest_.backlog_max_bytes > 0) {
    fill = std::max(fill, static_cast<double>(held_bytes()) /
                              static_cast<double>(dest_.backlog_max_bytes));
  }
  return fill;
}

// Aggregate destinations never shed (the config refuses it): their windows
// would silently miss events.
bool Pipeline::ShedDue() const {
  return dest_.backlog_shed && !aggregator_ && backlog_fill() >= 1.0;
}

void Pipeline::Shed(const log::Position& from) {
  const uint64_t to = log_->durable_next_lsn();
  sink_->Discard();
  // Count what is skipped: the entries routed here.
  uint64_t events = 0;
  std::unique_ptr<log::TailReader> rd;
  Status s = log_->NewReader(from, this, &rd);
  while (s.ok()) {
    log::Entry e;
    if (rd->Next(&e, &s) != log::TailReader::Result::kEntry || e.header.lsn >= to) break;
    sinks::Record r;
    if (Select(e, &r)) ++events;
  }
  const std::string reason = "shed: backlog over its quota (" + std::to_string(held_events()) +
                             " entries, " + std::to_string(held_bytes()) + " bytes held)";
  std::string line;
  DeadLetters::FormatShed(name_, reason, from.next_lsn, to, events, &line);
  while (true) {
    s = dead_letters_->Append(name_, line);
    if (s.ok()) break;
    SetError("dead letters: " + s.message());
    if (!SleepInterruptible(1000)) return;
  }
  stats_.shed.fetch_add(events, std::memory_order_relaxed);
  if (to > from.next_lsn) Note(from.next_lsn, to - 1, wire::OutcomeKind::kShed, reason);
  spdlog::error("destination {}: {}; skipped {} events (lsn {} to {}), recorded in dead letters",
                name_, reason, events, from.next_lsn, to - 1);
  const log::Position target{to, 0, 0};
  s = log_->NewReader(target, this, &reader_);
  if (!s.ok()) {
    SetError("log read: " + s.message());
    return;
  }
  if (Commit(reader_->position()).ok()) {
    Advance(reader_->position());
  } else {
    uncommitted_ = true;  // the write loop retries the commit, then advances
  }
}

void Pipeline::DeadLetterRange(const log::Position& from, uint64_t end_lsn, const Delivery& d) {
  std::unique_ptr<log::TailReader> rd;
  Status s = log_->NewReader(from, this, &rd);
  std::string lines;
  uint64_t count = 0;
  while (s.ok()) {
    log::Entry e;
    if (rd->Next(&e, &s) != log::TailReader::Result::kEntry || e.header.lsn >= end_lsn) break;
    sinks::Record r;
    Selected sel;
    if (!Select(e, &r, &sel)) continue;
    // Only what reached the sink: records the transforms filtered or
    // dead-lettered already are not repeated here.
    Letter l;
    l.event_id = r.event_id;
    l.options = sel.options;
    l.options_size = static_cast<size_t>(r.payload - sel.options);
    l.payload = r.payload;
    l.payload_size = r.payload_size;
    const size_t pending = pending_dl_.size();
    const uint64_t pending_count = pending_dl_count_;
    const size_t noted = noted_.size();
    const Shaped shaped = Shape(e, sel, &r);
    pending_dl_.resize(pending);
    pending_dl_count_ = pending_count;
    noted_.resize(noted);
    if (shaped != Shaped::kWrite) continue;
    Note(e.header.lsn, e.header.lsn, wire::OutcomeKind::kDeadLetter, d.error);
    l.reason = d.error;
    l.attempts = d.attempts;
    l.first_error = d.first_error;
    l.last_error = d.last_error;
    l.lsn = e.header.lsn;
    DeadLetters::Format(name_, l, &lines);
    ++count;
  }
  while (true) {
    s = dead_letters_->Append(name_, lines);
    if (s.ok()) break;
    SetError("dead letters: " + s.message());
    if (!SleepInterruptible(1000)) return;
  }
  stats_.dead_lettered.fetch_add(count, std::memory_order_relaxed);
  spdlog::error("destination {}: {} records to dead letters: {}", name_, count, d.error);
}

Pipeline::Flushed Pipeline::FlushBatch(const log::Position& start, const log::Position& end,
                                       int64_t n) {
  stats_.received.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
  const uint64_t bytes = sink_->buffered_bytes();
  const Delivery d = Deliver();
  switch (d.kind) {
    case Delivery::kOk:
      stats_.delivered.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
      stats_.delivered_bytes.fetch_add(bytes, std::memory_order_relaxed);
      return Flushed::kDone;
    case Delivery::kFatal:
      sink_->Discard();
      if (n > 1) return Bisect(start, end, d);
      DeadLetterRange(start, end.next_lsn, d);
      return Flushed::kDone;
    case Delivery::kGaveUp:
      sink_->Discard();
      DeadLetterRange(start, end.next_lsn, d);
      return Flushed::kDone;
    case Delivery::kShed:
      Shed(start);
      return Flushed::kShed;
    case Delivery::kStopped:
      break;
  }
  // Stopped while the sink was failing: the batch stays in the log and is
  // delivered after the restart.
  spdlog::warn("destination {}: stopping with {} undelivered records still in the log", name_, n);
  return Flushed::kStopped;
}

Pipeline::Flushed Pipeline::Bisect(const log::Position& start, const log::Position& end,
                                   const Delivery& first) {
  stats_.bisections.fetch_add(1, std::memory_order_relaxed);
  // The batch again, shaped, in owned memory: this path is rare, and the
  // halves are written more than once.
  struct Held {
    log::EntryHeader header;
    std::string id;
    std::string original;  // [options, payload] as stored, for the dead letter
    size_t options_size;
    std::string shaped;
  };
  std::vector<Held> batch;
  {
    std::unique_ptr<log::TailReader> rd;
    Status s = log_->NewReader(start, this, &rd);
    while (s.ok()) {
      log::Entry e;
      if (rd->Next(&e, &s) != log::TailReader::Result::kEntry || e.header.lsn >= end.next_lsn) {
        break;
      }
      sinks::Record r;
      Selected sel;
      if (!Select(e, &r, &sel)) continue;
      Held h;
      h.header = e.header;
      h.id.assign(r.event_id);
      h.options_size = static_cast<size_t>(r.payload - sel.options);
      h.original.assign(reinterpret_cast<const char*>(sel.options), h.options_size + r.payload_size);
      const size_t pending = pending_dl_.size();
      const uint64_t pending_count = pending_dl_count_;
      const size_t noted = noted_.size();
      const Shaped shaped = Shape(e, sel, &r);
      pending_dl_.resize(pending);
      pending_dl_count_ = pending_count;
      noted_.resize(noted);
      if (shaped != Shaped::kWrite) continue;
      h.shaped.assign(reinterpret_cast<const char*>(r.payload), r.payload_size);
      batch.push_back(std::move(h));
    }
    if (!s.ok()) SetError("log read: " + s.message());
  }
  spdlog::warn("destination {}: a batch of {} was refused ({}); splitting it to find the "
               "records refused",
               name_, batch.size(), first.error);
  auto letter = [&](const Held& h, const Delivery& d) {
    Letter l;
    l.event_id = h.id;
    l.reason = d.error;
    l.attempts = d.attempts;
    l.first_error = d.first_error;
    l.last_error = d.last_error;
    l.lsn = h.header.lsn;
    const auto* o = reinterpret_cast<const uint8_t*>(h.original.data());
    l.options = o;
    l.options_size = h.options_size;
    l.payload = o + h.options_size;
    l.payload_size = h.original.size() - h.options_size;
    DeadLetterNow(l);
    Note(h.header.lsn, h.header.lsn, wire::OutcomeKind::kDeadLetter, d.error);
  };
  // Ranges still to deliver, in log order: a stack with the next on top.
  // The whole batch was refused already, so it starts with its halves.
  std::vector<std::pair<size_t, size_t>> halves;
  auto split = [&halves](size_t lo, size_t hi) {
    const size_t mid = lo + (hi - lo) / 2;
    halves.push_back({mid, hi});
    if (mid > lo) halves.push_back({lo, mid});
  };
  split(0, batch.size());
  size_t refused = 0;
  while (!halves.empty()) {
    auto [lo, hi] = halves.back();
    halves.pop_back();
    for (size_t i = lo; i < hi; ++i) {
      sinks::Record r;
      r.header = &batch[i].header;
      r.event_id = batch[i].id;
      r.payload = reinterpret_cast<const uint8_t*>(batch[i].shaped.data());
      r.payload_size = batch[i].shaped.size();
      sink_->Write(r);
    }
    const uint64_t bytes = sink_->buffered_bytes();
    const Delivery d = Deliver();
    switch (d.kind) {
      case Delivery::kOk:
        stats_.delivered.fetch_add(hi - lo, std::memory_order_relaxed);
        stats_.delivered_bytes.fetch_add(bytes, std::memory_order_relaxed);
        break;
      case Delivery::kFatal:
        sink_->Discard();
        if (hi - lo == 1) {
          letter(batch[lo], d);
          ++refused;
        } else {
          split(lo, hi);
        }
        break;
      case Delivery::kGaveUp:
        sink_->Discard();
        for (size_t i = lo; i < hi; ++i) letter(batch[i], d);
        refused += hi - lo;
        break;
      case Delivery::kShed:
        Shed(start);
        return Flushed::kShed;
      case Delivery::kStopped:
        return Flushed::kStopped;
    }
  }
  if (batch.empty()) {
    // The log could not be read back: the whole range goes to dead letters.
    DeadLetterRange(start, end.next_lsn, first);
  } else {
    spdlog::error("destination {}: {} of {} records refused, to dead letters: {}", name_,
                  refused, batch.size(), first.error);
  }
  return Flushed::kDone;
}

}  // namespace forkd::pipeline
