#include "pipeline/pipeline.h"

#include <spdlog/spdlog.h>

#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/clock.h"
#include "pipeline/stored_event.h"
#include "wire/codec.h"
#include "wire/msgpack.h"

namespace forkd::pipeline {

namespace {

// Cursor state of a destination with an aggregate: a marker, the sink's
// state with its length, then the aggregate's checkpoint.
constexpr std::string_view kAggStateMarker("\0FA1", 4);

void SplitState(const std::string& state, std::string* sink, std::string* agg) {
  if (state.size() >= kAggStateMarker.size() + 4 &&
      std::string_view(state).substr(0, kAggStateMarker.size()) == kAggStateMarker) {
    const uint32_t n = wire::GetU32(reinterpret_cast<const uint8_t*>(state.data()) + 4);
    if (n <= state.size() - 8) {
      sink->assign(state, 8, n);
      agg->assign(state, 8 + n, std::string::npos);
      return;
    }
  }
  *sink = state;
  agg->clear();
}

}  // namespace

Pipeline::Pipeline(const DestinationConfig& dest, const Config& config,
                   std::unique_ptr<sinks::Sink> sink, log::Log* log, log::CursorStore* cursors,
                   DeadLetters* dead_letters, PriorityGate* gate, OutcomeWatch* outcomes)
    : dest_(dest),
      name_(dest.name),
      templates_(config.templates),
      sink_(std::move(sink)),
      log_(log),
      cursors_(cursors),
      dead_letters_(dead_letters),
      gate_(gate),
      outcomes_(outcomes),
      breaker_(dest.breaker_failures, dest.breaker_cooldown_ms),
      bucket_(dest.rate_limit, dest.rate_burst, MonoMicros()),
      shaper_(dest_.chain, templates_),
      aggregator_(shaper_.aggregator()) {
  // Several forkd aggregating into one table: each writes its own partial
  // rows, and the store merges them.
  if (aggregator_ && sink_->merges_instances()) aggregator_->SetInstance(config.instance);
  if (dest_.from_earliest) {
    for (size_t i = 0; i < config.destinations.size(); ++i) {
      dest_names_.push_back(config.destinations[i].name);
      if (config.destinations[i].name == name_) self_index_ = static_cast<uint32_t>(i);
    }
    backfill_router_ = std::make_unique<Router>(config.routes, dest_names_, config.unmatched);
  }
}

Pipeline::~Pipeline() { Stop(false, 0); }

Status Pipeline::Start() {
  log::Cursor cursor;
  Status s = cursors_->Load(name_, &cursor);
  if (s.IsNotFound()) {
    // A destination seen for the first time starts at the log's end (it
    // receives what is routed to it from now on), or with `from: earliest`
    // at the oldest event still retained: then the events logged before it
    // existed are offered to today's routes (a backfill).
    const uint64_t end = log_->durable_next_lsn();
    if (dest_.from_earliest) {
      s = cursors_->SaveBackfill(name_, end);  // before the cursor: a crash between redoes both
      if (!s.ok()) return s;
    }
    cursor.position = log::Position{dest_.from_earliest ? log_->first_lsn() : end, 0, 0};
    s = cursors_->Save(name_, cursor);
    if (!s.ok()) return s;
    spdlog::info("destination {}: new, starting at lsn {}{}", name_, cursor.position.next_lsn,
                 dest_.from_earliest ? " (the oldest retained; earlier events go through "
                                       "today's routes)"
                                     : "");
  } else if (!s.ok()) {
    // A damaged cursor: start from the oldest retained entry. Some records
    // arrive twice; none is lost.
    spdlog::warn("destination {}: {}; restarting from the oldest retained entry (lsn {})", name_,
                 s.message(), log_->first_lsn());
    cursor = log::Cursor{};
    cursor.position = log::Position{log_->first_lsn(), 0, 0};
  }
  if (cursor.position.next_lsn > log_->durable_next_lsn()) {
    spdlog::warn("destination {}: cursor lsn {} is past the log's end {}; the log was reset",
                 name_, cursor.position.next_lsn, log_->durable_next_lsn());
    cursor.position = log::Position{log_->durable_next_lsn(), 0, 0};
  }
  if (dest_.from_earliest) {
    backfill_until_ = cursors_->LoadBackfill(name_);
    if (backfill_until_ > cursor.position.next_lsn) {
      spdlog::info("destination {}: backfilling lsn {} to {} through today's routes", name_,
                   cursor.position.next_lsn, backfill_until_);
    }
  }
  std::string agg_state;
  SplitState(cursor.sink_state, &loaded_state_, &agg_state);
  if (aggregator_ && !agg_state.empty()) {
    std::string error;
    if (!aggregator_->Restore(agg_state, &error)) {
      spdlog::warn("destination {}: aggregate state not restored ({}); it starts empty at lsn {}",
                   name_, error, cursor.position.next_lsn);
    } else {
      spdlog::info("destination {}: aggregate restored, {} open groups", name_,
                   aggregator_->groups());
    }
  }
  s = log_->NewReader(cursor.position, this, &reader_);
  if (!s.ok()) return s;
  {
    std::lock_guard<std::mutex> lock(delivered_mu_);
    delivered_position_ = cursor.position;
  }
  delivered_next_lsn_.store(cursor.position.next_lsn);
  committed_next_lsn_.store(cursor.position.next_lsn);
  committed_segment_.store(cursor.position.segment);
  committed_offset_.store(cursor.position.offset);
  thread_ = std::thread([this] { Run(); });
  return Status::Ok();
}

void Pipeline::Stop(bool drain, int64_t drain_timeout_ms) {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    drain_deadline_us_.store(MonoMicros() + drain_timeout_ms * 1000);
    drain_.store(drain);
    stop_.store(true);
  }
  cv_.notify_all();
  log_->WakeAll();
  thread_.join();
}

void Pipeline::SetTemplates(
    const std::map<std::string, transforms::Chain, std::less<>>& templates) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    next_templates_ =
        std::make_unique<std::map<std::string, transforms::Chain, std::less<>>>(templates);
  }
  templates_pending_.store(true, std::memory_order_release);
}

void Pipeline::TakeTemplates() {
  std::lock_guard<std::mutex> lock(mu_);
  templates_pending_.store(false, std::memory_order_relaxed);
  if (next_templates_) templates_.swap(*next_templates_);  // the shaper holds a reference
  next_templates_.reset();
}

std::string Pipeline::last_error() const {
  std::lock_guard<std::mutex> lock(err_mu_);
  return last_error_;
}

void Pipeline::SetError(const std::string& e) {
  {
    std::lock_guard<std::mutex> lock(err_mu_);
    last_error_ = e;
  }
  healthy_.store(false);
}

void Pipeline::Corruption(uint64_t offset, size_t bytes, const std::string& reason) {
  stats_.corrupt_regions.fetch_add(1, std::memory_order_relaxed);
  spdlog::error("destination {}: log damage at byte {} ({} bytes skipped): {}", name_, offset,
                bytes, reason);
}

bool Pipeline::SleepInterruptible(int64_t ms) {
  std::unique_lock<std::mutex> lock(mu_);
  auto give_up = [&] {
    return stop_.load() && (!drain_.load() || MonoMicros() > drain_deadline_us_.load());
  };
  cv_.wait_for(lock, std::chrono::milliseconds(ms), give_up);
  return !give_up();
}

bool Pipeline::Select(const log::Entry& e, sinks::Record* r, Selected* sel) {
  StoredEvent s;
  ReadStoredEvent(e, name_, &s);
  const bool backfill = !s.mine && e.header.lsn < backfill_until_;
  if (!s.mine && !backfill) return false;
  if (sel && s.route_t != nullptr) {
    sel->route_t = s.route_t;
    sel->route_t_count = s.route_t_count;
  }
  r->event_id = StoredEventId(e, s, id_buf_);
  if (sel) sel->options = s.options;
  r->header = &e.header;
  r->payload = s.payload;
  r->payload_size = s.payload_size;
  return !backfill || Backfilled(s.list, s.dests, s.by_routes, *r, sel);
}

bool Pipeline::Backfilled(const wire::Value& d, const uint8_t* dests, bool by_routes,
                          const sinks::Record& r, Selected* sel) {
  // The caller named destinations: only `also` routes can add this one.
  backfill_named_.clear();
  if (!by_routes) {
    if (!backfill_router_->has_also()) return false;
    wire::Reader rd(dests, static_cast<size_t>(r.payload - dests));
    rd.Next();
    for (uint32_t i = 0; i < d.len; ++i) {
      wire::Value s = rd.Next();
      if (s.kind == wire::Kind::kArray) {
        const uint32_t n = s.len;
        s = rd.Next();
        for (uint32_t k = 1; k < n; ++k) rd.Skip();
      }
      if (s.kind != wire::Kind::kStr) continue;
      for (uint32_t j = 0; j < dest_names_.size(); ++j) {
        if (dest_names_[j] == s.str()) backfill_named_.push_back(j);
      }
    }
    if (backfill_named_.empty()) return false;  // none of them is configured now
  }
  backfill_doc_.Load(r.payload, r.payload_size);
  backfill_scratch_.Reset();
  if (!backfill_router_->Route(backfill_doc_, backfill_named_, r.event_id, &backfill_scratch_,
                               &backfill_decision_)) {
    return false;
  }
  for (const Router::Target& t : backfill_decision_.targets) {
    if (t.dest != self_index_) continue;
    if (sel && !t.transforms.empty()) {
      backfill_route_t_.clear();
      wire::Writer w(&backfill_route_t_);
      w.ArrayHeader(static_cast<uint32_t>(1 + t.transforms.size()));
      w.Str(name_);
      for (const std::string* n : t.transforms) w.Str(*n);
      sel->route_t = backfill_route_t_.data();
      sel->route_t_count = static_cast<uint32_t>(t.transforms.size());
    }
    return true;
  }
  return false;
}

void Pipeline::DeadLetterNow(const Letter& l) {
  DeadLetters::Format(name_, l, &pending_dl_);
  ++pending_dl_count_;
}

bool Pipeline::WritePendingDeadLetters() {
  if (pending_dl_.empty()) return true;
  while (true) {
    const Status s = dead_letters_->Append(name_, pending_dl_);
    if (s.ok()) break;
    SetError("dead letters: " + s.message());
    if (!SleepInterruptible(1000)) return false;
  }
  stats_.dead_lettered.fetch_add(pending_dl_count_, std::memory_order_relaxed);
  pending_dl_.clear();
  pending_dl_count_ = 0;
  return true;
}

void Pipeline::Note(uint64_t first, uint64_t last, wire::OutcomeKind kind,
                    const std::string& reason) {
  if (outcomes_ == nullptr || !outcomes_->active()) return;
  noted_.push_back(NotedOutcome{first, last, kind, reason});
}

log::Position Pipeline::delivered_position() const {
  std::lock_guard<std::mutex> lock(delivered_mu_);
  return delivered_position_;
}

void Pipeline::Advance(const log::Position& next) {
  const uint64_t next_lsn = next.next_lsn;
  if (!noted_.empty()) {
    // The notes below next_lsn are done with (in practice all of them: they
    // are below the reader's position, which next_lsn is).
    size_t n = 0;
    while (n < noted_.size() && noted_[n].first < next_lsn) ++n;
    outcomes_->Record(noted_.data(), n);
    noted_.erase(noted_.begin(), noted_.begin() + static_cast<std::ptrdiff_t>(n));
  }
  {
    std::lock_guard<std::mutex> lock(delivered_mu_);
    delivered_position_ = next;
  }
  delivered_next_lsn_.store(next_lsn, std::memory_order_release);
}

Pipeline::Shaped Pipeline::Shape(const log::Entry& e, const Selected& sel, sinks::Record* r) {
  Shaper::EventParts parts;
  parts.options = sel.options;
  parts.route_t = sel.route_t;
  parts.route_t_count = sel.route_t_count;
  // Readers of options and route_t stop at this bound; a backfill's route_t
  // lives in its own (valid, smaller or larger) buffer.
  parts.bound = std::max<size_t>(e.event_size, backfill_route_t_.size());
  parts.payload = r->payload;
  parts.payload_size = r->payload_size;
  parts.recv_us = e.header.recv_us;
  parts.event_id = r->event_id;
  std::string reason;
  const uint8_t* out;
  size_t out_size;
  switch (shaper_.Shape(parts, &reason, &out, &out_size)) {
    case Shaper::Result::kWrite:
      r->payload = out;
      r->payload_size = out_size;
      return Shaped::kWrite;
    case Shaper::Result::kAbsorbed:
      stats_.aggregated.fetch_add(1, std::memory_order_relaxed);
      return Shaped::kSkip;
    case Shaper::Result::kDropped:
      stats_.filtered.fetch_add(1, std::memory_order_relaxed);
      Note(e.header.lsn, e.header.lsn, wire::OutcomeKind::kFiltered, std::string());
      return Shaped::kSkip;
    case Shaper::Result::kDeadLetter: {
      stats_.failed_transform.fetch_add(1, std::memory_order_relaxed);
      Letter l;
      l.event_id = r->event_id;
      l.reason = reason;
      l.lsn = e.header.lsn;
      l.options = sel.options;
      l.options_size = static_cast<size_t>(parts.payload - sel.options);
      l.payload = parts.payload;
      l.payload_size = parts.payload_size;
      DeadLetterNow(l);
      Note(e.header.lsn, e.header.lsn, wire::OutcomeKind::kDeadLetter, reason);
      return Shaped::kSkip;
    }
  }
  return Shaped::kSkip;
}

std::string Pipeline::CursorState(const std::string* aggregate_state) const {
  std::string sink = sink_->State();
  if (!aggregator_) return sink;
  std::string s(kAggStateMarker);
  uint8_t n[4];
  wire::PutU32(n, static_cast<uint32_t>(sink.size()));
  s.append(reinterpret_cast<const char*>(n), 4);
  s.append(sink);
  if (aggregate_state) {
    s.append(*aggregate_state);
  } else {
    s.append(aggregator_->Checkpoint());
  }
  return s;
}

bool Pipeline::EmitAggregate(const log::Position& pos) {
  // The state with its rows still marked changed: what a crash before the
  // final commit must come back to, so that they are emitted again.
  const std::string before = aggregator_->Checkpoint();
  static thread_local std::vector<std::pair<std::string, wire::Buffer>> rows;
  rows.clear();
  aggregator_->Emit([&](std::string_view id, const wire::Buffer& row) {
    wire::Buffer copy(row.size());
    copy.Append(row.data(), row.size());
    rows.emplace_back(std::string(id), std::move(copy));
  });
  log::EntryHeader h;
  h.lsn = pos.next_lsn;
  h.recv_us = WallMicros();
  int64_t n = 0;
  for (const auto& [id, row] : rows) {
    sinks::Record rec;
    rec.header = &h;
    rec.event_id = id;
    std::string reason;
    switch (shaper_.ShapeRow(id, row, h.recv_us, &reason, &rec.payload, &rec.payload_size)) {
      case Shaper::Result::kWrite: break;
      case Shaper::Result::kDeadLetter: {
        Letter l;
        l.event_id = id;
        l.reason = reason;
        l.payload = row.data();
        l.payload_size = row.size();
        DeadLetterNow(l);
        continue;
      }
      default: continue;
    }
    if (sink_->NeedsRotate(rec)) {
      if (n > 0) {
        Status fs = FlushWithRetry();
        if (!fs.ok() && !fs.IsFatal()) return false;
        if (fs.IsFatal()) sink_->Discard();
      }
      n = 0;
      if (!RotateWithRetry(rec)) return false;
      (void)Commit(pos, &before);
    }
    sink_->Write(rec);
    ++n;
  }
  if (n > 0) {
    Status fs = FlushWithRetry();
    if (!fs.ok() && !fs.IsFatal()) return false;
    if (fs.IsFatal()) {
      // Rows the store refuses: kept with the reason; the aggregate still
      // holds their values and emits them again when they change.
      const std::string reason = fs.message();
      for (const auto& [id, row] : rows) {
        Letter l;
        l.event_id = id;
        l.reason = reason;
        l.attempts = 1;
        l.first_error = l.last_error = reason;
        l.payload = row.data();
        l.payload_size = row.size();
        DeadLetterNow(l);
      }
      sink_->Discard();
    } else {
      stats_.rows_emitted.fetch_add(static_cast<uint64_t>(n), std::memory_order_relaxed);
    }
  }
  last_emit_us_ = MonoMicros();
  return true;
}

void Pipeline::Throttle(int64_t ms) {
  if (ms <= 0) return;
  stats_.throttled_ms.fetch_add(static_cast<uint64_t>(ms), std::memory_order_relaxed);
  (void)SleepInterruptible(ms);
}

Status Pipeline::Commit(const log::Position& pos, const std::string* aggregate_state) {
  // Records dead-lettered by transforms are durable before the cursor passes them.
  if (!WritePendingDeadLetters()) return Status::Retry("stopped");
  log::Cursor c{pos, CursorState(aggregate_state)};
  Status s = cursors_->Save(name_, c);
  if (!s.ok()) {
    stats_.failed_commit.fetch_add(1, std::memory_order_relaxed);
    SetError("cursor commit: " + s.message());
    spdlog::error("destination {}: cursor commit failed: {}", name_, s.message());
    return s;
  }
  committed_segment_.store(pos.segment, std::memory_order_relaxed);
  committed_offset_.store(pos.offset, std::memory_order_relaxed);
  committed_next_lsn_.store(pos.next_lsn, std::memory_order_release);
  return s;
}

bool Pipeline::RotateWithRetry(const sinks::Record& r) {
  int64_t backoff = dest_.retry_initial_ms;
  while (true) {
    Status s = sink_->Rotate(r);
    if (s.ok()) return true;
    stats_.failed_open.fetch_add(1, std::memory_order_relaxed);
    SetError("rotate: " + s.message());
    spdlog::warn("destination {}: cannot start a new output: {}", name_, s.message());
    if (!SleepInterruptible(backoff)) return false;
    backoff = std::min<int64_t>(backoff * 2, dest_.retry_max_ms);
  }
}

void Pipeline::Run() {
  // Named for top and /proc; priority is the thread's nice value, so when
  // the CPU is short the kernel serves high destinations first.
  const std::string thread_name = ("fk:" + name_).substr(0, 15);
  pthread_setname_np(pthread_self(), thread_name.c_str());
  const int nice = dest_.priority == Priority::kHigh ? 0 : dest_.priority == Priority::kLow ? 10 : 4;
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)), nice) != 0) {
    spdlog::debug("destination {}: cannot set nice {}: {}", name_, nice, std::strerror(errno));
  }
  int64_t backoff = dest_.retry_initial_ms;
  while (true) {
    Status s = sink_->Open(loaded_state_);
    if (s.ok()) break;
    stats_.failed_open.fetch_add(1, std::memory_order_relaxed);
    SetError("open: " + s.message());
    spdlog::warn("destination {}: cannot open: {}", name_, s.message());
    if (!SleepInterruptible(backoff)) return;
    backoff = std::min<int64_t>(backoff * 2, dest_.retry_max_ms);
  }

  const int64_t max_wait_us = dest_.batch_max_wait_ms * 1000;
  const int64_t emit_every_us = aggregator_ ? dest_.chain.aggregate->emit_every_ms * 1000 : 0;
  last_emit_us_ = MonoMicros();
  const size_t max_bytes = static_cast<size_t>(dest_.batch_max_bytes);
  last_commit_us_ = MonoMicros();
  in_flight_ = dest_.batch_in_flight > 0 ? dest_.batch_in_flight
                                         : sink_->pipelines_by_default() ? kDefaultInFlight : 1;
  const std::string ignored = InFlightIgnored(dest_, *sink_);
  pipelined_ = in_flight_ > 1 && ignored.empty();
  if (dest_.batch_in_flight > 1 && !ignored.empty()) {
    spdlog::warn("destination {}: batch.in_flight {} has no effect: {}; one batch at a time", name_,
                 dest_.batch_in_flight, ignored);
  }
  while (true) {
    if (stop_.load() && !drain_.load()) return;
    if (bucket_.enabled()) {
      const int64_t wait_us = bucket_.WaitUs(MonoMicros());
      if (wait_us > 0) Throttle((wait_us + 999) / 1000);
    }
    if (gate_ && dest_.priority == Priority::kLow && !stop_.load() &&
        gate_->HighBehind(MonoMicros())) {
      Throttle(PriorityGate::kPauseMs);
    }
    if (ShedDue()) {
      // The flights first: a failed one moves the reader back to its start,
      // so that the shed range covers it.
      if (ReapAll() == Flushed::kStopped) return;
      Shed(reader_->position());
      continue;
    }
    const Counted counted_before = pipelined_ ? CountedNow() : Counted{};
    log::Position start = reader_->position();
    int64_t n = 0;
    uint64_t consumed = 0;
    int64_t first_us = 0;
    bool caught_up = false;
    bool skipped = false;  // a record of ours was filtered, dead-lettered or aggregated
    bool shed = false;     // the batch was shed: the reader moved on
    while (n < dest_.batch_max_events && sink_->buffered_bytes() < max_bytes) {
      if (bucket_.enabled() && !bucket_.Ready(MonoMicros())) break;
      const log::Position before = reader_->position();
      log::Entry e;
      Status io;
      const log::TailReader::Result r = reader_->Next(&e, &io);
      if (!io.ok()) {
        stats_.failed_read.fetch_add(1, std::memory_order_relaxed);
        SetError("log read: " + io.message());
        spdlog::error("destination {}: log read failed: {}", name_, io.message());
        if (!SleepInterruptible(1000)) return;
        break;
      }
      if (r == log::TailReader::Result::kEntry) {
        ++consumed;
        if (templates_pending_.load(std::memory_order_acquire)) TakeTemplates();
        sinks::Record rec;
        Selected sel;
        if (!Select(e, &rec, &sel)) {
          // Others' events only, streaming by: end the batch now and then,
          // so that this cursor follows them and the log behind it can go.
          if (n == 0 && (consumed & 4095) == 0) break;
          continue;
        }
        if (Shape(e, sel, &rec) != Shaped::kWrite) {
          skipped = true;
          // Folded into the aggregate: its rows go out every emit_every.
          if (aggregator_ && (consumed & 255) == 0 && aggregator_->dirty() &&
              MonoMicros() - last_emit_us_ >= emit_every_us) {
            break;
          }
          continue;
        }
        if (sink_->NeedsRotate(rec)) {
          // The records before this one go out and are committed first; the
          // new output unit is committed before anything is written to it.
          if (n > 0) {
            const Flushed f = FlushBatch(start, before, n);
            if (f == Flushed::kStopped) return;
            if (f == Flushed::kShed) {
              shed = true;
              break;
            }
          }
          if (!RotateWithRetry(rec)) return;
          if (Commit(before).ok()) {
            last_commit_us_ = MonoMicros();
            Advance(before);
          } else {
            uncommitted_ = true;  // retried below; 'delivered' waits for it
          }
          start = before;
          n = 0;
        }
        sink_->Write(rec);
        if (bucket_.enabled()) bucket_.Take(MonoMicros());
        if (n++ == 0) first_us = MonoMicros();
        continue;
      }
      caught_up = true;
      if (stop_.load()) break;  // draining: everything durable has been read
      // Batches on their way: send this one now and wait for their answers,
      // so that 'delivered' never waits for a linger.
      if (!flights_.empty()) break;
      const int64_t now = MonoMicros();
      if (n > 0 && now - first_us >= max_wait_us) break;
      // Only records that were not written, or none of ours: end the batch
      // now, so that dead letters and the cursor are committed (at most once
      // a second for others' events) and 'delivered' waiters settle, instead
      // of waiting for a record of ours that is written.
      if (n == 0 && (skipped || consumed > 0)) break;
      if (n == 0 && sink_->buffered_bytes() == 0) {
        // Idle: a sink that closes its output by time may do so now.
        bool changed = false;
        const Status is = sink_->Idle(WallMicros(), &changed);
        if (!is.ok()) {
          SetError("idle: " + is.message());
        } else if ((changed || (uncommitted_ && MonoMicros() - last_commit_us_ >= kIdempotentCommitUs)) &&
                   Commit(reader_->position()).ok()) {
          last_commit_us_ = MonoMicros();
          uncommitted_ = false;
          // After a commit that failed: what it held back is delivered now.
          if (!aggregator_ || !aggregator_->dirty()) Advance(reader_->position());
        }
      }
      const bool rows_due = aggregator_ && aggregator_->dirty();
      if (rows_due && now - last_emit_us_ >= emit_every_us) break;
      int64_t wait = n > 0 ? first_us + max_wait_us - now : 200000;
      if (rows_due) wait = std::min(wait, last_emit_us_ + emit_every_us - now);
      log_->WaitDurable(reader_->position().next_lsn, wait);  // until a new entry is durable
      if (stop_.load() && !drain_.load()) return;
      caught_up = false;
    }
    stats_.read.fetch_add(consumed, std::memory_order_relaxed);
    if (shed) continue;
    const log::Position pos = reader_->position();
    if (pipelined_) {
      const Flushed f = SendBatch(start, pos, n, consumed, counted_before, caught_up || stop_.load());
      if (f == Flushed::kStopped) return;
      if (f != Flushed::kDone) continue;
      if (gate_ && dest_.priority == Priority::kHigh) {
        gate_->SetBehind(!caught_up && healthy(), MonoMicros());
      }
      if (stop_.load() && flights_.empty() && pos.next_lsn >= log_->durable_next_lsn()) {
        if (committed_next_lsn() < pos.next_lsn && Commit(pos).ok()) Advance(pos);
        return;
      }
      continue;
    }
    if (n > 0) {
      const Flushed f = FlushBatch(start, pos, n);
      if (f == Flushed::kStopped) return;
      if (f == Flushed::kShed) continue;
    }
    if (gate_ && dest_.priority == Priority::kHigh) {
      // Behind: a full batch while the store keeps up, so the CPU is short.
      gate_->SetBehind(!caught_up && healthy(), MonoMicros());
    }
    // Read once for the rest of the batch: a stop that lands between the
    // emit below and the drain's end must not skip the aggregate's rows.
    const bool stopping = stop_.load();
    bool emitted = false;
    if (aggregator_ && aggregator_->dirty() &&
        (stopping || MonoMicros() - last_emit_us_ >= emit_every_us)) {
      if (!EmitAggregate(pos)) return;
      emitted = true;
    }
    const int64_t now = MonoMicros();
    // A store that absorbs redelivery needs no cursor commit per batch: at
    // most one a second (a crash then redelivers up to a second's worth).
    // The records are in the store then, so 'delivered' need not wait for
    // the commit.
    const bool defer = n > 0 && sink_->idempotent() && !emitted && pending_dl_.empty() &&
                       !stopping && now - last_commit_us_ < kIdempotentCommitUs;
    bool committed = true;  // or nothing needed committing
    if (defer) {
      uncommitted_ = true;
    } else if ((consumed > 0 || emitted || uncommitted_) &&
               !(n > 0 || emitted || uncommitted_ || !pending_dl_.empty() ||
                 now - last_commit_us_ > 1000000 || (stopping && caught_up))) {
      // Others' events only, within a second of the last commit: this one
      // waits, and is made within the second, by a later batch or by the
      // idle loop.
      uncommitted_ = true;
    } else if (consumed > 0 || emitted || uncommitted_) {
      if (Commit(pos).ok()) {
        last_commit_us_ = now;
        uncommitted_ = false;
      } else {
        // Not delivered until a commit succeeds: its dead letters may not be
        // written, and a store that is not idempotent would get the batch
        // again after a restart.
        committed = false;
        uncommitted_ = true;
      }
    }
    // An event folded into the aggregate is delivered once its row is.
    if (committed && (!aggregator_ || !aggregator_->dirty())) Advance(pos);
    // Draining ends only at the log's final end: `caught_up` may predate
    // events that became durable while this batch was flushing.
    if (stopping && pos.next_lsn >= log_->durable_next_lsn()) {
      if (committed_next_lsn() < pos.next_lsn && Commit(pos).ok() &&
          (!aggregator_ || !aggregator_->dirty())) {
        Advance(pos);  // what a failed commit held back
      }
      return;
    }
  }
}

}  // namespace forkd::pipeline
