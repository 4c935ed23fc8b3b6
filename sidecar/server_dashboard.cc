// What the dashboard reads besides /api/status and /metrics: the last hour
// of every destination (GET /api/history), and the alerts firing.
#include <cstdio>

#include "core/clock.h"
#include "server.h"
#include "sinks/common/json.h"

namespace forkd {

const char* Server::Condition(const pipeline::Pipeline* p) {
  if (p == nullptr) return "failed";
  if (p->breaker_state() != pipeline::Breaker::State::kClosed) return "breaker_open";
  return p->healthy() ? "running" : "retrying";
}

// Once a second, whatever the tick's pace: a sample is a reading of
// counters, and History turns two readings into rates, so a late tick only
// widens one sample.
void Server::RecordHistory(const Destinations& snapshot) {
  const int64_t now_us = WallMicros();
  const int64_t at = now_us / 1000000;
  if (at <= history_at_) return;
  history_at_ = at;
  const auto& [config, pipelines, failed, removed, start_failures] = snapshot;
  const uint64_t end = log_->durable_next_lsn();
  const auto routed = ingest_->DestinationCounts();
  std::vector<std::pair<std::string, admin::Counters>> readings;
  for (const auto& d : config->destinations) {
    std::shared_ptr<pipeline::Pipeline> p;
    for (const auto& q : pipelines) {
      if (q->name() == d.name) p = q;
    }
    const FailedStart* f = nullptr;
    for (const auto& x : failed) {
      if (x.name == d.name) f = &x;
    }
    admin::Counters c;
    auto it = routed.find(d.name);
    c.routed = it != routed.end() ? it->second : 0;
    const uint64_t starts = start_failures.count(d.name) ? start_failures.at(d.name) : 0;
    if (p) {
      const auto& st = p->stats();
      c.delivered = st.delivered.load();
      c.errors = st.failed.load() + st.failed_open.load() + st.failed_read.load() +
                 st.failed_commit.load() + starts;
      c.lag_events = static_cast<double>(end - std::min(end, p->delivered_next_lsn()));
      c.lag_seconds = LagSeconds(d.name, p->delivered_position(), end, now_us);
    } else if (f) {
      c.errors = starts;
      c.lag_events = static_cast<double>(end - std::min(end, f->hold.next_lsn));
      c.lag_seconds = LagSeconds(d.name, f->hold, end, now_us);
    } else {
      // Between a stop and a start (a replay restarting it): no sample this
      // second, for anyone, rather than a destination left out, which
      // History would take for removed.
      return;
    }
    c.dead_letters = static_cast<double>(DeadLetterLines(d.name));
    readings.emplace_back(d.name, c);
  }
  history_.Record(at, readings);
}

void Server::PublishAlerts() {
  std::vector<alerts::Transition> firing;
  if (alerts_) firing = alerts_->Firing();
  std::lock_guard<std::mutex> lock(firing_mu_);
  firing_ = std::move(firing);
}

std::string Server::HistoryJson(int64_t since) const { return history_.Json(since); }

void Server::AppendAlertsFiring(std::string* j) const {
  std::vector<alerts::Transition> firing;
  {
    std::lock_guard<std::mutex> lock(firing_mu_);
    firing = firing_;
  }
  j->append("\"alerts_firing\":[");
  for (size_t i = 0; i < firing.size(); ++i) {
    const auto& t = firing[i];
    if (i) j->push_back(',');
    j->append("{\"alert\":");
    sinks::AppendJsonString(t.alert, j);
    j->append(",\"signal\":");
    sinks::AppendJsonString(std::string(alerts::SpecOf(t.signal).name), j);
    j->append(",\"destination\":");
    if (t.destination.empty()) {
      j->append("null");
    } else {
      sinks::AppendJsonString(t.destination, j);
    }
    char buf[160];
    std::snprintf(buf, sizeof(buf), ",\"value\":%.17g,\"%s\":%.17g,\"since\":", t.value,
                  t.above ? "above" : "below", t.threshold);
    j->append(buf);
    std::string since;
    sinks::AppendIsoTime(t.since_ms / 1000, static_cast<uint32_t>(t.since_ms % 1000) * 1000000,
                         &since);
    sinks::AppendJsonString(since, j);
    j->push_back('}');
  }
  j->append("],");
}

}  // namespace forkd
