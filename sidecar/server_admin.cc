// What the admin server asks of the running forkd: Prometheus metrics, the
// /api/status JSON, dead-letter replay and drop, and dropping a removed
// destination's cursor. The wiring and lifecycle are in server.cc.
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <limits>
#include <set>

#include "core/clock.h"
#include "core/fs.h"
#include "log/backlog.h"
#include "log/replay.h"
#include "server.h"
#include "sinks/common/json.h"
#include "sinks/registry.h"

namespace forkd {
namespace {

void Metric(std::string* out, const char* name, const char* type, const char* help) {
  out->append("# HELP ").append(name).append(" ").append(help).append("\n");
  out->append("# TYPE ").append(name).append(" ").append(type).append("\n");
}

void Sample(std::string* out, const char* name, const std::string& labels, double v) {
  out->append(name);
  if (!labels.empty()) out->append("{").append(labels).append("}");
  char buf[40];
  std::snprintf(buf, sizeof(buf), " %.17g\n", v);
  out->append(buf);
}

}  // namespace

std::string Server::MetricsText() const {
  std::string m;
  if (!started_.load()) return m;
  const auto& in = ingest_->stats();
  const auto& ls = log_->stats();
  Metric(&m, "fork_info", "gauge", "This forkd: its instance id and version (always 1)");
  {
    std::string instance;
    sinks::AppendJsonString(config_->instance, &instance);  // quoted and escaped as a label wants
    Sample(&m, "fork_info", "instance=" + instance + ",version=\"" FORKD_VERSION "\"", 1);
  }
  Metric(&m, "fork_ingest_events_total", "counter", "Events accepted into the log");
  Sample(&m, "fork_ingest_events_total", "", static_cast<double>(in.events.load()));
  Metric(&m, "fork_ingest_bytes_total", "counter", "Bytes of events accepted");
  Sample(&m, "fork_ingest_bytes_total", "", static_cast<double>(in.bytes.load()));
  Metric(&m, "fork_ingest_rejected_total", "counter", "Events nacked");
  Sample(&m, "fork_ingest_rejected_total", "", static_cast<double>(in.nacked.load()));
  Metric(&m, "fork_ingest_duplicates_total", "counter", "Resent events already taken");
  Sample(&m, "fork_ingest_duplicates_total", "", static_cast<double>(in.duplicates.load()));
  Metric(&m, "fork_ingest_bad_frames_total", "counter", "Malformed frames");
  Sample(&m, "fork_ingest_bad_frames_total", "", static_cast<double>(in.bad_frames.load()));
  Metric(&m, "fork_ingest_clients", "gauge", "Clients remembered");
  Sample(&m, "fork_ingest_clients", "", static_cast<double>(in.clients.load()));
  Metric(&m, "fork_ingest_forgotten_clients_total", "counter",
         "Clients forgotten: idle past limits.client_idle, or past limits.max_clients");
  Sample(&m, "fork_ingest_forgotten_clients_total", "",
         static_cast<double>(in.forgotten_clients.load()));
  Metric(&m, "fork_ingest_read_pauses_total", "counter",
         "Times reading clients stopped at limits.max_pending until a commit completed");
  Sample(&m, "fork_ingest_read_pauses_total", "", static_cast<double>(in.read_pauses.load()));
  Metric(&m, "fork_ingest_refused_hellos_total", "counter",
         "Hellos refused: a client id claimed by a connection it is not bound to");
  Sample(&m, "fork_ingest_refused_hellos_total", "", static_cast<double>(in.refused_hellos.load()));
  Metric(&m, "fork_ingest_refused_connections_total", "counter",
         "Connections refused: a CURVE key not in curve.clients");
  Sample(&m, "fork_ingest_refused_connections_total", "",
         static_cast<double>(in.refused_connections.load()));
  Metric(&m, "fork_ingest_refused_frames_total", "counter",
         "Route frames dropped: their connection has no accepted hello for the client id");
  Sample(&m, "fork_ingest_refused_frames_total", "", static_cast<double>(in.refused_frames.load()));
  if (http_ingest_) {
    const auto& h = http_ingest_->stats();
    Metric(&m, "fork_http_ingest_requests_total", "counter", "POST /v1/events requests past the token, method and Content-Type checks");
    Sample(&m, "fork_http_ingest_requests_total", "", static_cast<double>(h.requests.load()));
    Metric(&m, "fork_http_ingest_events_total", "counter",
           "Events of HTTP requests answered 200 with their receipts");
    Sample(&m, "fork_http_ingest_events_total", "", static_cast<double>(h.events.load()));
    Metric(&m, "fork_http_ingest_refused_total", "counter",
           "HTTP ingest requests answered 4xx or 5xx (token, Host, body, or forkd's refusal)");
    Sample(&m, "fork_http_ingest_refused_total", "", static_cast<double>(h.refused.load()));
  }
  Metric(&m, "fork_log_commits_total", "counter", "Group commits (one fsync each)");
  Sample(&m, "fork_log_commits_total", "", static_cast<double>(ls.commits.load()));
  Metric(&m, "fork_log_sync_seconds_total", "counter", "Time spent writing and syncing");
  Sample(&m, "fork_log_sync_seconds_total", "", static_cast<double>(ls.sync_us_total.load()) / 1e6);
  Metric(&m, "fork_log_write_errors_total", "counter", "Failed log writes or syncs");
  Sample(&m, "fork_log_write_errors_total", "", static_cast<double>(ls.errors.load()));
  Metric(&m, "fork_log_bytes", "gauge", "Bytes held in log segments");
  Sample(&m, "fork_log_bytes", "", static_cast<double>(log_->total_bytes()));
  Metric(&m, "fork_log_segments", "gauge", "Log segment files");
  Sample(&m, "fork_log_segments", "", static_cast<double>(log_->segment_count()));

  Metric(&m, "fork_route_matched_total", "counter", "Events a route matched, by route index");
  for (const auto& r : ingest_->RouteCounts()) {
    Sample(&m, "fork_route_matched_total",
           "route=\"" + std::to_string(r.route) + "\",shadow=\"" + (r.shadow ? "true" : "false") +
               "\"",
           static_cast<double>(r.matched));
  }

  const uint64_t end = log_->durable_next_lsn();
  const int64_t now = WallMicros();
  const Destinations snapshot = SnapshotDestinations();
  const auto& [config, pipelines, failed, removed, start_failures] = snapshot;
  auto starts = [&](const std::string& name) {
    return static_cast<double>(start_failures.count(name) ? start_failures.at(name) : 0);
  };
  struct Series {
    const char* name;
    const char* type;
    const char* help;
  };
  const Series series[] = {
      {"fork_destination_received_total", "counter", "Events routed to the destination and read"},
      {"fork_destination_delivered_total", "counter", "Events flushed and committed"},
      {"fork_destination_failed_total", "counter",
       "Failures by stage: transform (records refused), open, read (the log), send (flushes), "
       "commit (the cursor), start (the pipeline could not start; tried again)"},
      {"fork_destination_retries_total", "counter", "Flush retries"},
      {"fork_destination_dead_lettered_total", "counter", "Events sent to dead letters"},
      {"fork_destination_lag_events", "gauge", "Log entries the destination has not processed"},
      {"fork_destination_lag_seconds", "gauge",
       "Age of the oldest log entry the destination has not processed (0: none)"},
      {"fork_destination_up", "gauge", "1 when the last flush succeeded"},
      {"fork_destination_running", "gauge",
       "1 when its pipeline runs; 0 when it failed to start (it holds the log from its cursor "
       "and is tried again)"},
      {"fork_destination_filtered_total", "counter", "Records dropped by filter or validate steps"},
      {"fork_destination_aggregated_total", "counter", "Events folded into the aggregate"},
      {"fork_destination_rows_emitted_total", "counter", "Aggregate rows written"},
      {"fork_destination_shed_total", "counter", "Events skipped past a shed backlog quota"},
      {"fork_destination_gave_up_total", "counter", "Batches given up after the retry limits"},
      {"fork_destination_breaker_state", "gauge", "Circuit breaker: 0 closed, 1 open, 2 half-open"},
      {"fork_destination_breaker_opens_total", "counter", "Times the breaker opened"},
      {"fork_destination_backlog_events", "gauge", "Log entries held for the destination"},
      {"fork_destination_backlog_bytes", "gauge", "Log bytes held for the destination"},
      {"fork_destination_queue_fill_ratio", "gauge", "Backlog held / its quota (1: full)"},
      {"fork_destination_throttled_seconds_total", "counter",
       "Time waited for the rate limit or for high-priority destinations"},
      {"fork_destination_batches_in_flight", "gauge",
       "Batches sent to the store and not yet answered (batch.in_flight)"},
      {"fork_destination_resent_batches_total", "counter",
       "Pipelined batches read and sent again after a batch before them failed"},
      {"fork_destination_put_rate", "gauge", "Events per second routed here (since last scrape)"},
      {"fork_destination_get_rate", "gauge", "Events per second delivered (since last scrape)"},
  };
  // Rates since the previous scrape.
  const int64_t mono = MonoMicros();
  std::map<std::string, std::pair<double, double>> rates;  // name -> (put, get)
  {
    std::lock_guard<std::mutex> lock(rates_mu_);
    const auto counts = ingest_->DestinationCounts();
    for (const auto& p : pipelines) {
      auto& prev = rate_prev_[p->name()];
      const uint64_t put = counts.count(p->name()) ? counts.at(p->name()) : 0;
      const uint64_t get = p->stats().delivered.load();
      const double dt = static_cast<double>(mono - prev.at_us) / 1e6;
      if (prev.at_us > 0 && dt > 0) {
        rates[p->name()] = {static_cast<double>(put - std::min(put, prev.put)) / dt,
                            static_cast<double>(get - std::min(get, prev.get)) / dt};
      }
      prev = RatePoint{mono, put, get};
    }
  }
  for (const Series& s : series) {
    Metric(&m, s.name, s.type, s.help);
    for (const auto& p : pipelines) {
      const auto& st = p->stats();
      std::string labels = "destination=\"" + p->name() + "\"";
      const uint64_t lag = end - std::min(end, p->delivered_next_lsn());
      double v = 0;
      const std::string n = s.name;
      if (n == "fork_destination_received_total") v = static_cast<double>(st.received.load());
      if (n == "fork_destination_delivered_total") v = static_cast<double>(st.delivered.load());
      if (n == "fork_destination_failed_total") {
        const std::pair<const char*, uint64_t> stages[] = {
            {"transform", st.failed_transform.load()}, {"open", st.failed_open.load()},
            {"read", st.failed_read.load()}, {"commit", st.failed_commit.load()}};
        for (const auto& [stage, count] : stages) {
          Sample(&m, s.name, labels + ",stage=\"" + stage + "\"", static_cast<double>(count));
        }
        Sample(&m, s.name, labels + ",stage=\"start\"", starts(p->name()));
        labels += ",stage=\"send\"";
        v = static_cast<double>(st.failed.load());
      }
      if (n == "fork_destination_retries_total") v = static_cast<double>(st.retries.load());
      if (n == "fork_destination_dead_lettered_total") v = static_cast<double>(st.dead_lettered.load());
      if (n == "fork_destination_lag_events") v = static_cast<double>(lag);
      if (n == "fork_destination_lag_seconds") {
        v = LagSeconds(p->name(), p->delivered_position(), end, now);
      }
      if (n == "fork_destination_up") v = p->healthy() ? 1 : 0;
      if (n == "fork_destination_running") v = 1;
      if (n == "fork_destination_filtered_total") v = static_cast<double>(st.filtered.load());
      if (n == "fork_destination_aggregated_total") v = static_cast<double>(st.aggregated.load());
      if (n == "fork_destination_rows_emitted_total") v = static_cast<double>(st.rows_emitted.load());
      if (n == "fork_destination_shed_total") v = static_cast<double>(st.shed.load());
      if (n == "fork_destination_gave_up_total") v = static_cast<double>(st.gave_up.load());
      if (n == "fork_destination_breaker_state") v = static_cast<double>(p->breaker_state());
      if (n == "fork_destination_breaker_opens_total") v = static_cast<double>(p->breaker_opens());
      if (n == "fork_destination_backlog_events") v = static_cast<double>(p->held_events());
      if (n == "fork_destination_backlog_bytes") v = static_cast<double>(p->held_bytes());
      if (n == "fork_destination_queue_fill_ratio") v = p->backlog_fill();
      if (n == "fork_destination_throttled_seconds_total") {
        v = static_cast<double>(st.throttled_ms.load()) / 1e3;
      }
      if (n == "fork_destination_batches_in_flight") v = static_cast<double>(st.in_flight.load());
      if (n == "fork_destination_resent_batches_total") v = static_cast<double>(st.resends.load());
      if (n == "fork_destination_put_rate") v = rates.count(p->name()) ? rates[p->name()].first : 0;
      if (n == "fork_destination_get_rate") v = rates.count(p->name()) ? rates[p->name()].second : 0;
      Sample(&m, s.name, labels, v);
    }
    // Failed to start: down, holding the log from its cursor; no traffic.
    for (const auto& f : failed) {
      const DestinationConfig* d = config->Find(f.name);
      if (d == nullptr) continue;
      std::string labels = "destination=\"" + f.name + "\"";
      const uint64_t held = end - std::min(end, f.hold.next_lsn);
      double v = 0;
      const std::string n = s.name;
      if (n == "fork_destination_failed_total") {
        for (const char* stage : {"transform", "open", "read", "commit", "send"}) {
          Sample(&m, s.name, labels + ",stage=\"" + stage + "\"", 0);
        }
        labels += ",stage=\"start\"";
        v = starts(f.name);
      }
      if (n == "fork_destination_lag_events" || n == "fork_destination_backlog_events") {
        v = static_cast<double>(held);
      }
      if (n == "fork_destination_lag_seconds") v = LagSeconds(f.name, f.hold, end, now);
      if (n == "fork_destination_backlog_bytes") v = static_cast<double>(log_->BytesFrom(f.hold));
      if (n == "fork_destination_queue_fill_ratio") v = HoldFill(*d, f.hold);
      Sample(&m, s.name, labels, v);
    }
  }
  // The sinks' own gauges (a kafka destination's librdkafka queue ...),
  // each series once, with a sample per destination that has it.
  {
    std::vector<std::pair<std::string, std::vector<sinks::Gauge>>> per;
    for (const auto& p : pipelines) {
      std::vector<sinks::Gauge> g;
      p->SinkGauges(&g);
      if (!g.empty()) per.emplace_back(p->name(), std::move(g));
    }
    std::vector<std::string_view> done;
    for (const auto& [_, gauges] : per) {
      for (const sinks::Gauge& g : gauges) {
        if (std::find(done.begin(), done.end(), g.name) != done.end()) continue;
        done.push_back(g.name);
        const std::string name(g.name), help(g.help);
        Metric(&m, name.c_str(), "gauge", help.c_str());
        for (const auto& [dest, others] : per) {
          for (const sinks::Gauge& o : others) {
            if (o.name == g.name) Sample(&m, name.c_str(), "destination=\"" + dest + "\"", o.value);
          }
        }
      }
    }
  }
  Metric(&m, "fork_removed_destination_undelivered_events", "gauge",
         "Events routed to a destination no longer configured that it did not deliver; its "
         "cursor keeps them in the log until it is configured again or dropped");
  for (const auto& r : removed) {
    Sample(&m, "fork_removed_destination_undelivered_events", "destination=\"" + r.name + "\"",
           static_cast<double>(r.undelivered));
  }
  Metric(&m, "fork_removed_destination_held_bytes", "gauge",
         "Log bytes kept from the cursor of a destination no longer configured");
  for (const auto& r : removed) {
    Sample(&m, "fork_removed_destination_held_bytes", "destination=\"" + r.name + "\"",
           static_cast<double>(log_->BytesFrom(r.hold)));
  }
  VerifyMetrics(&m);
  SourceMetricsText(&m);
  if (events_) {
    Metric(&m, "fork_event_index_entries", "gauge",
           "Log entries in the event index (GET /api/events/<id>)");
    Sample(&m, "fork_event_index_entries", "", static_cast<double>(events_->entries()));
    Metric(&m, "fork_event_index_bytes", "gauge", "Memory held by the event index");
    Sample(&m, "fork_event_index_bytes", "", static_cast<double>(events_->memory_bytes()));
    Metric(&m, "fork_event_index_lag_events", "gauge",
           "Durable log entries the event index has not reached yet");
    const uint64_t indexed = events_->indexed_next_lsn();
    Sample(&m, "fork_event_index_lag_events", "",
           static_cast<double>(end - std::min(end, indexed)));
  }
  return m;
}

void Server::VerifyMetrics(std::string* m) const {
  if (!verify_) return;
  Metric(m, "fork_verify_runs_total", "counter", "Scheduled verify runs (the config's verify:)");
  Sample(m, "fork_verify_runs_total", "", static_cast<double>(verify_->runs()));
  const auto last = verify_->last();
  if (!last) return;
  Metric(m, "fork_verify_last_run_timestamp_seconds", "gauge", "When the last verify ran");
  Sample(m, "fork_verify_last_run_timestamp_seconds", "", static_cast<double>(last->at_us) / 1e6);
  Metric(m, "fork_verify_last_duration_seconds", "gauge", "How long the last verify took");
  Sample(m, "fork_verify_last_duration_seconds", "", static_cast<double>(last->took_us) / 1e6);
  const struct {
    const char* name;
    const char* help;
    uint64_t verify::DestinationReport::*field;
  } series[] = {
      {"fork_verify_expected_rows", "Rows the last verify expected in the store", &verify::DestinationReport::expected},
      {"fork_verify_missing_rows", "Expected rows the last verify did not find", &verify::DestinationReport::missing},
      {"fork_verify_unexpected_rows", "Rows the last verify found that the retained log does not explain", &verify::DestinationReport::unexpected},
      {"fork_verify_differing_rows", "Rows the last verify found with other values than forkd wrote", &verify::DestinationReport::differing},
  };
  for (const auto& x : series) {
    Metric(m, x.name, "gauge", x.help);
    for (const auto& d : last->destinations) {
      Sample(m, x.name, "destination=\"" + d.name + "\"", static_cast<double>(d.*x.field));
    }
  }
  Metric(m, "fork_verify_error", "gauge", "1 when the last verify could not read the destination's store");
  for (const auto& d : last->destinations) {
    Sample(m, "fork_verify_error", "destination=\"" + d.name + "\"", d.error.empty() ? 0 : 1);
  }
}

int Server::Dlq(const std::string& action, const std::string& destination,
                const std::vector<std::string>& ids, std::string* body) {
  auto fail = [&](int status, const std::string& message) {
    *body = "{\"error\":";
    sinks::AppendJsonString(message, body);
    body->append("}\n");
    return status;
  };
  if (!started_.load() || stopping_.load()) return fail(503, "forkd is not running");
  if (destination.empty()) return fail(400, "destination is required (?destination=NAME)");
  std::shared_ptr<const Config> config;
  {
    std::lock_guard<std::mutex> lock(reload_mu_);
    config = config_;
  }
  if (config->Find(destination) == nullptr) {
    std::string known;
    for (const auto& d : config->destinations) known += (known.empty() ? "" : ", ") + d.name;
    return fail(404, "unknown destination '" + destination + "' (configured: " + known + ")");
  }
  std::vector<std::string> lines;
  std::vector<size_t> numbers;
  Status s = dead_letters_->Read(destination, &lines, &numbers);
  if (!s.ok()) return fail(500, s.message());
  auto wanted = [&](const pipeline::ParsedLetter& l) {
    return ids.empty() || std::find(ids.begin(), ids.end(), l.id) != ids.end();
  };
  std::set<std::string> taken;  // the lines acted on
  std::vector<std::string> events;
  std::vector<std::string> errors;  // "file:line: why", for the answer and the log
  uint64_t not_replayable = 0, bad = 0, invalid = 0;
  const std::string path = dead_letters_->PathFor(destination);
  for (size_t i = 0; i < lines.size(); ++i) {
    const std::string& line = lines[i];
    const std::string where = path + ":" + std::to_string(numbers[i]) + ": ";
    pipeline::ParsedLetter l;
    std::string error;
    if (!pipeline::ParseLetter(line, &l, &error)) {
      ++bad;
      errors.push_back(where + error);
      continue;
    }
    if (!wanted(l)) continue;
    if (action == "replay") {
      if (l.raw.empty() || l.id.empty()) {
        ++not_replayable;  // a shed range or an aggregate row
        continue;
      }
      // Each letter stands alone: a damaged one stays behind, named, and
      // does not hold back the others.
      std::string event;
      if (!pipeline::ReplayEvent(*config, destination, l, &event, &error)) {
        ++invalid;
        errors.push_back(where + "id " + l.id + ": " + error);
        continue;
      }
      events.push_back(std::move(event));
    }
    taken.insert(line);
  }
  for (const auto& e : errors) spdlog::warn("dead letters of {}: {}; left in place", destination, e);
  if (!ids.empty() && taken.empty() && not_replayable == 0 && invalid == 0) {
    return fail(404, "no dead letter of " + destination + " has the id(s) given");
  }
  if (action == "replay") {
    s = ingest_->Inject(std::move(events), 10000);
    if (!s.ok()) return fail(503, "replay: " + s.message());
  }
  size_t removed = 0;
  if (!taken.empty()) {
    s = dead_letters_->Rewrite(
        destination, [&](const std::string& line) { return taken.count(line) == 0; }, &removed);
  }
  if (!s.ok()) {
    // Replayed but still listed: a later replay would deliver them twice,
    // which sinks with keys absorb; nothing is lost.
    return fail(500, "dead letters not rewritten: " + s.message());
  }
  spdlog::info("dead letters of {}: {} {}", destination, action == "replay" ? "replayed" : "dropped",
               removed);
  *body = "{\"destination\":";
  sinks::AppendJsonString(destination, body);
  body->append(action == "replay" ? ",\"replayed\":" : ",\"dropped\":")
      .append(std::to_string(removed))
      .append(",\"not_replayable\":")
      .append(std::to_string(not_replayable))
      .append(",\"unreadable\":")
      .append(std::to_string(bad))
      .append(",\"invalid\":")
      .append(std::to_string(invalid))
      .append(",\"errors\":[");
  for (size_t i = 0; i < errors.size(); ++i) {
    if (i > 0) body->push_back(',');
    sinks::AppendJsonString(errors[i], body);
  }
  body->append("]}\n");
  return 200;
}

int Server::DropCursor(const std::string& destination, std::string* body) {
  auto fail = [&](int status, const std::string& message) {
    *body = "{\"error\":";
    sinks::AppendJsonString(message, body);
    body->append("}\n");
    return status;
  };
  if (!started_.load() || stopping_.load()) return fail(503, "forkd is not running");
  if (destination.empty()) return fail(400, "destination is required (?destination=NAME)");
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  if (config_->Find(destination) != nullptr) {
    return fail(409, "destination '" + destination +
                         "' is configured: remove it from the config and reload before "
                         "dropping its cursor");
  }
  CountRemoved(/*now=*/true);
  uint64_t undelivered = 0;
  std::string known;
  bool found = false;
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    for (const auto& r : removed_) {
      known += (known.empty() ? "" : ", ") + r.name;
      if (r.name == destination) {
        found = true;
        undelivered = r.undelivered;
      }
    }
  }
  if (!found) {
    return fail(404, "no cursor of destination '" + destination + "' holds the log (" +
                         (known.empty() ? "none does" : "held by: " + known) + ")");
  }
  Status s = cursors_->Remove(destination);
  if (!s.ok()) return fail(500, s.message());
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    removed_.erase(std::remove_if(removed_.begin(), removed_.end(),
                                  [&](const RemovedCursor& r) { return r.name == destination; }),
                   removed_.end());
  }
  spdlog::warn("cursor of destination {} dropped: its {} undelivered events are given up and the "
               "log no longer keeps them",
               destination, undelivered);
  *body = "{\"destination\":";
  sinks::AppendJsonString(destination, body);
  body->append(",\"dropped_events\":").append(std::to_string(undelivered)).append("}\n");
  return 200;
}

int Server::Replay(const std::string& destination, const std::string& since,
                   const std::string& from_id, std::string* body) {
  auto fail = [&](int status, const std::string& message) {
    *body = "{\"error\":";
    sinks::AppendJsonString(message, body);
    body->append("}\n");
    return status;
  };
  if (!started_.load() || stopping_.load()) return fail(503, "forkd is not running");
  if (destination.empty()) return fail(400, "destination is required (?destination=NAME)");
  if (since.empty() == from_id.empty()) {
    return fail(400, "give one of since (a duration: 10m, 2h) and from_id (an event id)");
  }
  log::ReplayRequest request;
  request.by_time = !since.empty();
  if (request.by_time) {
    int64_t ms = 0;
    if (!ParseDurationMs(since, &ms) || ms < 0) {
      return fail(400, "since: '" + since + "' is not a duration (250ms, 30s, 10m, 2h, 1d)");
    }
    request.since_us = WallMicros() - ms * 1000;
  } else {
    request.id = from_id;
  }
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  const DestinationConfig* d = config_->Find(destination);
  if (d == nullptr) {
    std::string known;
    for (const auto& c : config_->destinations) known += (known.empty() ? "" : ", ") + c.name;
    return fail(404, "unknown destination '" + destination + "' (configured: " + known + ")");
  }
  if (d->chain.aggregate) {
    return fail(409, "destination '" + destination +
                         "' aggregates: its rows already count the events, and a replay would "
                         "count them twice");
  }
  std::shared_ptr<pipeline::Pipeline> p;
  for (const auto& q : Pipelines()) {
    if (q->name() == destination) p = q;
  }
  if (!p) {
    return fail(409, "destination '" + destination +
                         "' is not running (it failed to start): it already holds the log from "
                         "its cursor");
  }
  // The pipeline stops, so its cursor is what it committed, and nothing
  // moves it while it is rewritten; retention waits on reload_mu_.
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    pipelines_.erase(std::remove(pipelines_.begin(), pipelines_.end(), p), pipelines_.end());
  }
  p->Stop(/*drain=*/false, 0);
  const uint64_t committed = p->committed_next_lsn();
  const uint64_t delivered = p->delivered_next_lsn();
  p.reset();
  log::Cursor cursor;
  Status s = cursors_->Load(destination, &cursor);
  if (!s.ok()) cursor.position = log::Position{committed, 0, 0};
  log::ReplayPlan plan;
  s = log::PlanReplay(log_.get(), destination, request, cursor.position.next_lsn, delivered,
                      log_->durable_next_lsn(), &plan);
  int status = 200;
  if (s.ok() && plan.from.next_lsn < cursor.position.next_lsn) {
    // The sink's state stays: a file sink's committed length is where the
    // events delivered again are appended.
    const uint64_t was = cursor.position.next_lsn;
    cursor.position = plan.from;
    s = cursors_->Save(destination, cursor);
    if (s.ok()) {
      spdlog::warn("destination {}: replay from lsn {} (was at lsn {}): {} events delivered again",
                   destination, plan.from.next_lsn, was, plan.events);
    }
  }
  if (!s.ok()) {
    status = fail(s.IsNotFound() ? 422 : 500, s.message());
  } else {
    *body = "{\"destination\":";
    sinks::AppendJsonString(destination, body);
    body->append(",\"from_lsn\":").append(std::to_string(plan.from.next_lsn));
    body->append(",\"from_received_at\":");
    sinks::AppendJsonString(plan.from_recv_us > 0 ? log::FormatUtc(plan.from_recv_us) : "",
                            body);
    body->append(",\"events\":").append(std::to_string(plan.events));
    body->append(",\"oldest_lsn\":").append(std::to_string(plan.oldest_lsn));
    body->append(",\"oldest_received_at\":");
    sinks::AppendJsonString(plan.oldest_recv_us > 0 ? log::FormatUtc(plan.oldest_recv_us) : "",
                            body);
    body->append("}\n");
  }
  // Running again, from the cursor as it now is, whatever happened above.
  std::shared_ptr<pipeline::Pipeline> np;
  if (StartOrHold(*d, *config_, &np)) {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    pipelines_.push_back(std::move(np));
    SortPipelines();
  }
  return status;
}

std::string Server::StatusJson() const {
  std::string j = "{";
  if (!started_.load()) return "{\"state\":\"starting\"}";
  const auto& in = ingest_->stats();
  const uint64_t end = log_->durable_next_lsn();
  const int64_t now = WallMicros();
  auto num = [&](const char* k, double v, bool comma = true) {
    char buf[64];
    std::snprintf(buf, sizeof(buf), "\"%s\":%.17g%s", k, v, comma ? "," : "");
    j.append(buf);
  };
  j.append("\"version\":\"" FORKD_VERSION "\",\"instance\":");
  sinks::AppendJsonString(config_->instance, &j);
  j.append(",\"listen\":");
  sinks::AppendJsonString(config_->listen, &j);
  j.push_back(',');
  num("uptime_seconds", static_cast<double>((MonoMicros() - start_us_) / 1000000));
  j.append("\"ingest\":{");
  num("events", static_cast<double>(in.events.load()));
  num("bytes", static_cast<double>(in.bytes.load()));
  num("rejected", static_cast<double>(in.nacked.load()));
  num("duplicates", static_cast<double>(in.duplicates.load()));
  num("clients", static_cast<double>(in.clients.load()), false);
  j.append("},\"log\":{");
  num("next_lsn", static_cast<double>(end));
  num("first_lsn", static_cast<double>(log_->first_lsn()));
  num("segments", static_cast<double>(log_->segment_count()));
  num("bytes", static_cast<double>(log_->total_bytes()));
  num("commits", static_cast<double>(log_->stats().commits.load()), false);
  j.append("},");
  AppendAlertsFiring(&j);
  SourcesJson(&j);
  j.append("\"destinations\":[");
  const Destinations snapshot = SnapshotDestinations();
  const auto& [config, pipelines, failed, removed, start_failures] = snapshot;
  static const char* kPriority[] = {"low", "normal", "high"};
  auto priority = [](Priority p) {
    return p == Priority::kHigh ? kPriority[2] : p == Priority::kLow ? kPriority[0] : kPriority[1];
  };
  bool first = true;
  // In config order: each one running, or failed to start.
  for (const auto& d : config->destinations) {
    std::shared_ptr<pipeline::Pipeline> p;
    for (const auto& q : pipelines) {
      if (q->name() == d.name) p = q;
    }
    const FailedStart* f = nullptr;
    for (const auto& x : failed) {
      if (x.name == d.name) f = &x;
    }
    if (!p && !f) continue;  // between a reload's stop and start
    if (!first) j.push_back(',');
    first = false;
    j.append("{\"name\":");
    sinks::AppendJsonString(d.name, &j);
    j.append(",\"type\":");
    sinks::AppendJsonString(d.type, &j);
    const uint64_t starts = start_failures.count(d.name) ? start_failures.at(d.name) : 0;
    if (!p) {
      // Not running: what it holds, and why it does not run.
      const uint64_t lag = end - std::min(end, f->hold.next_lsn);
      j.append(",\"state\":\"failed\",\"condition\":\"failed\",\"breaker\":\"closed\",\"priority\":\"")
          .append(priority(d.priority))
          .append("\",");
      num("shed", 0);
      num("gave_up", 0);
      num("backlog_events", static_cast<double>(lag));
      num("backlog_bytes", static_cast<double>(log_->BytesFrom(f->hold)));
      num("queue_fill_ratio", HoldFill(d, f->hold));
      for (const char* k : {"received", "delivered", "failed", "retries", "dead_lettered",
                            "filtered", "aggregated"}) {
        num(k, 0);
      }
      num("lag_events", static_cast<double>(lag));
      num("lag_seconds", LagSeconds(d.name, f->hold, end, now));
      num("committed_lsn", static_cast<double>(f->hold.next_lsn));
      num("start_failures", static_cast<double>(starts));
      num("retry_in_seconds",
          static_cast<double>(std::max<int64_t>(0, f->next_retry_us - MonoMicros()) / 1000) / 1e3);
      j.append("\"last_error\":");
      sinks::AppendJsonString(f->error, &j);
      j.push_back('}');
      continue;
    }
    const auto& st = p->stats();
    const uint64_t lag = end - std::min(end, p->delivered_next_lsn());
    j.append(",\"state\":\"").append(p->healthy() ? "ok" : "failing").append("\",");
    j.append("\"condition\":\"").append(Condition(p.get())).append("\",");
    static const char* kBreaker[] = {"closed", "open", "half-open"};
    j.append("\"breaker\":\"").append(kBreaker[static_cast<int>(p->breaker_state())]).append("\",");
    j.append("\"priority\":\"").append(priority(p->config().priority)).append("\",");
    num("shed", static_cast<double>(st.shed.load()));
    num("gave_up", static_cast<double>(st.gave_up.load()));
    num("backlog_events", static_cast<double>(p->held_events()));
    num("backlog_bytes", static_cast<double>(p->held_bytes()));
    num("queue_fill_ratio", p->backlog_fill());
    num("received", static_cast<double>(st.received.load()));
    num("delivered", static_cast<double>(st.delivered.load()));
    num("failed", static_cast<double>(st.failed.load()));
    num("retries", static_cast<double>(st.retries.load()));
    num("dead_lettered", static_cast<double>(st.dead_lettered.load()));
    num("filtered", static_cast<double>(st.filtered.load()));
    num("aggregated", static_cast<double>(st.aggregated.load()));
    num("lag_events", static_cast<double>(lag));
    num("lag_seconds", LagSeconds(d.name, p->delivered_position(), end, now));
    num("committed_lsn", static_cast<double>(p->committed_next_lsn()));
    num("start_failures", static_cast<double>(starts));
    j.append("\"last_error\":");
    sinks::AppendJsonString(p->last_error(), &j);
    j.push_back('}');
  }
  // Cursors of destinations no longer configured: the log they keep.
  j.append("],\"removed_destinations\":[");
  for (size_t i = 0; i < removed.size(); ++i) {
    const auto& r = removed[i];
    if (i) j.push_back(',');
    j.append("{\"name\":");
    sinks::AppendJsonString(r.name, &j);
    j.append(",\"state\":\"").append(r.count_at_us != 0 ? "counting" : "held").append("\",");
    num("undelivered_events", static_cast<double>(r.undelivered));
    num("held_bytes", static_cast<double>(log_->BytesFrom(r.hold)));
    num("committed_lsn", static_cast<double>(r.hold.next_lsn), false);
    j.push_back('}');
  }
  // The last scheduled verify (the config's `verify:`), or null.
  j.append("],\"verify\":");
  const auto verified = verify_ ? verify_->last() : nullptr;
  j.append(verified ? verified->Json() : "null");
  j.push_back('}');
  return j;
}

// The log keeps each entry's receipt time, so the age of the oldest one not
// processed is exact: the entry at the destination's position is read back
// (one block, with the position's segment hint), once per position — a
// destination that is failing stays put, and each scrape after the first is
// a map lookup. Nothing is tracked per event on the delivery path. Entries
// not routed to the destination count too, as in lag_events: its position
// passes them as soon as it reads them.
double Server::LagSeconds(const std::string& name, const log::Position& from, uint64_t end,
                          int64_t now_us) const {
  if (from.next_lsn >= end) return 0;
  int64_t recv_us = 0;
  {
    std::lock_guard<std::mutex> lock(lag_mu_);
    auto it = oldest_held_.find(name);
    if (it != oldest_held_.end() && it->second.lsn == from.next_lsn) recv_us = it->second.recv_us;
  }
  if (recv_us == 0) {
    log::EntryHeader h;
    Status s = log::FirstHeld(log_.get(), from, end, &h);
    // The hint's segment was deleted meanwhile (retention, or a shed moved
    // the position on): once more from wherever the log starts now.
    if (!s.ok() && !s.IsNotFound()) s = log::FirstHeld(log_.get(), {from.next_lsn, 0, 0}, end, &h);
    if (!s.ok()) return 0;  // nothing held is left in the log
    recv_us = h.recv_us;
    std::lock_guard<std::mutex> lock(lag_mu_);
    oldest_held_[name] = OldestHeld{from.next_lsn, recv_us};
  }
  return static_cast<double>(std::max<int64_t>(0, now_us - recv_us)) / 1e6;
}

Server::Destinations Server::SnapshotDestinations() const {
  std::lock_guard<std::mutex> lock(pipelines_mu_);
  return Destinations{config_, pipelines_, failed_, removed_, start_failures_};
}

}  // namespace forkd
