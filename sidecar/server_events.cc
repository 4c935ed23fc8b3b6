// GET /api/events/<id>: where one event stands. The event index
// (log/event_indexer.h) finds its entries in the retained log;
// pipeline/event_status.h answers per destination from the running
// pipelines' positions and a trail of when those positions moved.
#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>

#include "core/clock.h"
#include "ingest/key_journal.h"
#include "pipeline/event_status.h"
#include "server.h"
#include "sinks/common/json.h"

namespace forkd {

void Server::StartEventIndex() {
  events_ = std::make_unique<log::EventIndexer>(log_.get());
  events_stop_.store(false);
  events_thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fork/index");
    RunEventIndex();
  });
}

void Server::StopEventIndex() {
  events_stop_.store(true);
  if (events_thread_.joinable()) events_thread_.join();
}

void Server::RunEventIndex() {
  constexpr size_t kStep = 16384;
  const int64_t t0 = MonoMicros();
  bool built = false;
  int64_t next_sample_us = 0;
  int64_t quiet_until_us = 0;  // after an error, one line a minute
  while (!events_stop_.load()) {
    size_t n = 0;
    Status s = events_->CatchUp(kStep, &n);
    const int64_t now = MonoMicros();
    if (!s.ok() && now >= quiet_until_us) {
      spdlog::warn("event index: reading the log: {} (tried again)", s.message());
      quiet_until_us = now + 60 * 1000000;
    }
    if (now >= next_sample_us) {
      SampleDeliveries();
      next_sample_us = now + kTrailEveryMs * 1000;
    }
    const bool caught_up = events_->indexed_next_lsn() >= log_->durable_next_lsn();
    if (!built && caught_up) {
      built = true;
      spdlog::info("event index: {} events from lsn {} indexed in {} ms ({:.1f} MiB)",
                   events_->entries(), log_->first_lsn(), (now - t0) / 1000,
                   static_cast<double>(events_->memory_bytes()) / (1 << 20));
    }
    if (!s.ok()) {
      std::this_thread::sleep_for(std::chrono::milliseconds(kTrailEveryMs));
    } else if (n < kStep) {
      log_->WaitDurable(events_->indexed_next_lsn(), kTrailEveryMs * 1000);
    }
  }
}

void Server::SampleDeliveries() {
  const int64_t now = WallMicros();
  const Destinations snapshot = SnapshotDestinations();
  std::lock_guard<std::mutex> lock(trail_mu_);
  for (const auto& p : snapshot.pipelines) {
    const uint64_t next = p->delivered_next_lsn();
    auto& t = trail_[p->name()];
    if (!t.empty() && t.back().next_lsn == next) {
      t.back().last_us = now;
      continue;
    }
    // A replay moved it back: what it passed before says nothing now.
    if (!t.empty() && next < t.back().next_lsn) t.clear();
    t.push_back(Passed{now, now, next});
    if (t.size() > kTrailPoints) t.pop_front();
  }
}

int Server::EventStatus(const std::string& id, std::string* body) const {
  auto fail = [&](int status, const std::string& message, bool with_id) {
    *body = "{\"error\":";
    sinks::AppendJsonString(message, body);
    if (with_id) {
      body->append(",\"id\":");
      sinks::AppendJsonString(id, body);
    }
    body->append("}\n");
    return status;
  };
  if (const std::string why = pipeline::MalformedEventId(id); !why.empty()) {
    return fail(400, why, false);
  }
  if (!started_.load() || !events_) return fail(503, "forkd is not running", true);
  const uint64_t end = log_->durable_next_lsn();
  // Read before the lookup: an index that reaches `end` only after it may
  // have missed the event.
  const uint64_t indexed = events_->indexed_next_lsn();
  std::vector<log::FoundEntry> found;
  Status s = events_->Find(id, &found);
  // Acknowledged a moment ago: the index may not have reached it yet.
  if (s.ok() && found.empty() && indexed < end && events_->WaitIndexed(end, 2000000)) {
    s = events_->Find(id, &found);
  }
  if (!s.ok()) return fail(500, "reading the log: " + s.message(), true);
  const uint64_t first = log_->first_lsn();
  const Destinations snapshot = SnapshotDestinations();
  const auto& [config, pipelines, failed, removed, start_failures] = snapshot;
  if (found.empty()) {
    if (events_->indexed_next_lsn() < end) {
      return fail(503,
                  "the event index is still being built (at lsn " +
                      std::to_string(events_->indexed_next_lsn()) + " of " +
                      std::to_string(end) + "); try again shortly",
                  true);
    }
    // A receipt id of a client whose events retention deleted up to it, or
    // an idempotency key the dedupe journal still remembers below the log.
    uint64_t key_lsn = 0;
    int64_t key_recv_us = 0;
    const bool expired =
        events_->Expired(id) ||
        (config->dedupe_max_keys > 0 &&
         ingest::KeyJournal::Find(config->data_dir + "/dedupe", id, &key_lsn, &key_recv_us)
             .ok() &&
         key_lsn < first);
    if (expired) {
      *body = "{\"id\":";
      sinks::AppendJsonString(id, body);
      body->append(",\"status\":\"expired\"");
      if (key_lsn > 0) {
        body->append(",\"lsn\":").append(std::to_string(key_lsn));
        body->append(",\"received_at\":");
        sinks::AppendJsonString(pipeline::UtcMillis(key_recv_us), body);
      }
      body->append(",\"retained_from_lsn\":")
          .append(std::to_string(first))
          .append(",\"destinations\":[]}\n");
      return 200;
    }
    return fail(404,
                "no event with id " + id + " is in the retained log (lsn " +
                    std::to_string(first) + " to " + std::to_string(end) +
                    "): unknown, or older than the log goes back",
                true);
  }

  auto progress = [&](const std::string& name) {
    pipeline::DeliveryProgress dp;
    for (const auto& p : pipelines) {
      if (p->name() != name) continue;
      dp.known = true;
      dp.next_lsn = p->delivered_next_lsn();
      const auto breaker = p->breaker_state();
      dp.state = breaker == pipeline::Breaker::State::kOpen       ? "breaker open"
                 : breaker == pipeline::Breaker::State::kHalfOpen ? "breaker half-open"
                 : p->healthy()                                   ? "running"
                                                                  : "retrying";
      dp.attempts = p->attempts();
      dp.last_error = p->last_error();
    }
    for (const auto& f : failed) {
      if (f.name != name) continue;
      dp.known = true;
      dp.next_lsn = f.hold.next_lsn;
      dp.state = "failed to start";
      dp.attempts = f.failures;
      dp.last_error = f.error;
    }
    // The first moment the trail saw its position past the event, and the
    // one before, when it was not yet: it was delivered in between.
    dp.passed = [this, name](uint64_t lsn, int64_t* at, int64_t* after) {
      std::lock_guard<std::mutex> lock(trail_mu_);
      auto it = trail_.find(name);
      if (it == trail_.end()) return;
      const auto& t = it->second;
      auto pass = std::partition_point(t.begin(), t.end(),
                                       [&](const Passed& x) { return x.next_lsn <= lsn; });
      if (pass == t.end()) {
        // Passed since the last sample: seen now.
        *at = WallMicros();
        if (!t.empty()) *after = t.back().last_us;
        return;
      }
      *at = pass->at_us;
      if (pass != t.begin()) *after = std::prev(pass)->last_us;
    };
    return dp;
  };
  *body = pipeline::EventStatusJson(*config, id, found, progress, *dead_letters_);
  return 200;
}

}  // namespace forkd
