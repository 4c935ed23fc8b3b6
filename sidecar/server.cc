#include "server.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <limits>
#include <set>

#include "core/clock.h"
#include "core/fs.h"
#include "sinks/common/json.h"
#include "sinks/registry.h"

namespace forkd {

Server::~Server() {
  if (admin_) admin_->Stop();
  ingest_.reset();
  pipelines_.clear();
  log_.reset();
  if (lock_fd_ >= 0) ::close(lock_fd_);
}

Status Server::Start() {
  Status s = fs::MakeDirs(config_->data_dir, 0700);
  if (!s.ok()) return s;
  // Only the owner may enter: the socket lives here.
  if (::chmod(config_->data_dir.c_str(), 0700) != 0) {
    return ErrnoStatus("restrict data_dir", config_->data_dir, errno);
  }
  const std::string lock_path = config_->data_dir + "/LOCK";
  lock_fd_ = ::open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (lock_fd_ < 0) return ErrnoStatus("open lock file", lock_path, errno);
  if (::flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return Status::IoError("another forkd is running with data_dir " + config_->data_dir);
  }

  log::LogOptions lo;
  lo.dir = config_->data_dir + "/wal";
  lo.fsync = config_->fsync;
  lo.segment_bytes = static_cast<uint64_t>(config_->segment_bytes);
  log::RecoveryInfo info;
  const int64_t t0 = MonoMicros();
  s = log::Log::Open(lo, &log_, &info);
  if (!s.ok()) return s;
  spdlog::info("log recovered in {} ms: {} segments, {} bytes, next lsn {}",
               (MonoMicros() - t0) / 1000, info.segments, info.bytes, info.next_lsn);
  if (info.torn_tail_bytes > 0) {
    spdlog::warn("log: cut a torn tail of {} bytes (a write interrupted by a crash)",
                 info.torn_tail_bytes);
  }
  for (const auto& d : info.damage) spdlog::error("log damage: {}", d);

  cursors_ = std::make_unique<log::CursorStore>(config_->data_dir + "/cursors");
  s = cursors_->Init();
  if (!s.ok()) return s;
  dead_letters_ = std::make_unique<pipeline::DeadLetters>(config_->data_dir + "/dead_letters");
  s = dead_letters_->Init();
  if (!s.ok()) return s;

  for (const auto& d : config_->destinations) {
    std::shared_ptr<pipeline::Pipeline> p;
    s = StartPipeline(d, *config_, &p);
    if (!s.ok()) return s;
    pipelines_.push_back(std::move(p));
  }

  ingest_ = std::make_unique<ingest::Ingest>(
      config_, log_.get(),
      [this](std::string_view name) {
        std::lock_guard<std::mutex> lock(pipelines_mu_);
        for (const auto& p : pipelines_) {
          if (p->name() == name) return p->delivered_next_lsn();
        }
        // Restarting during a reload: not yet. Removed by one: nothing to wait for.
        return config_->Find(name) ? 0 : std::numeric_limits<uint64_t>::max();
      },
      &outcomes_);
  s = ingest_->Recover();
  if (!s.ok()) return s;
  s = ingest_->Bind();
  if (!s.ok()) return s;
  if (!config_->admin.empty()) {
    admin_ = std::make_unique<admin::AdminServer>(admin::Handlers{
        [this] { return started_.load(); }, [this] { return MetricsText(); },
        [this] { return StatusJson(); },
        [this](const std::string& action, const std::string& dest,
               const std::vector<std::string>& ids,
               std::string* body) { return Dlq(action, dest, ids, body); }});
    s = admin_->Start(config_->admin);
    if (!s.ok()) return s;
    spdlog::info("admin on http://{}/", config_->admin);
  }
  start_us_ = MonoMicros();
  started_.store(true);
  return Status::Ok();
}

Status Server::StartPipeline(const DestinationConfig& d, const Config& c,
                             std::shared_ptr<pipeline::Pipeline>* out) {
  const sinks::SinkType* type = sinks::FindSinkType(d.type);
  sinks::SinkContext ctx{&c, &d};
  auto p = std::make_shared<pipeline::Pipeline>(d, c, type->create(ctx), log_.get(),
                                                cursors_.get(), dead_letters_.get(),
                                                &priority_gate_, outcomes_.For(d.name));
  Status s = p->Start();
  if (!s.ok()) return Status::IoError("destination " + d.name + ": " + s.message());
  *out = std::move(p);
  return Status::Ok();
}

std::vector<std::shared_ptr<pipeline::Pipeline>> Server::Pipelines() const {
  std::lock_guard<std::mutex> lock(pipelines_mu_);
  return pipelines_;
}

void Server::Reload(Config next_config) {
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  if (!started_.load() || stopping_.load()) return;
  const Config& old = *config_;
  // What only a restart can change keeps its running value.
  auto keep = [&](const char* what, bool same) {
    if (!same) spdlog::warn("reload: {} changed; it takes effect at the next restart", what);
  };
  keep("data_dir", next_config.data_dir == old.data_dir);
  keep("listen", next_config.listen == old.listen);
  keep("admin", next_config.admin == old.admin);
  keep("wal", next_config.fsync == old.fsync && next_config.batch_ms == old.batch_ms &&
                  next_config.segment_bytes == old.segment_bytes);
  keep("limits", next_config.max_frame == old.max_frame && next_config.max_event == old.max_event &&
                     next_config.limits.max_depth == old.limits.max_depth);
  keep("dedupe", next_config.dedupe_window_ms == old.dedupe_window_ms &&
                     next_config.dedupe_max_keys == old.dedupe_max_keys &&
                     next_config.dedupe_recover_bytes == old.dedupe_recover_bytes);
  next_config.data_dir = old.data_dir;
  next_config.listen = old.listen;
  next_config.admin = old.admin;
  next_config.fsync = old.fsync;
  next_config.batch_ms = old.batch_ms;
  next_config.segment_bytes = old.segment_bytes;
  next_config.max_frame = old.max_frame;
  next_config.max_event = old.max_event;
  next_config.limits = old.limits;
  next_config.dedupe_window_ms = old.dedupe_window_ms;
  next_config.dedupe_max_keys = old.dedupe_max_keys;
  next_config.dedupe_recover_bytes = old.dedupe_recover_bytes;
  auto next = std::make_shared<const Config>(std::move(next_config));

  std::vector<std::shared_ptr<pipeline::Pipeline>> current = Pipelines();
  auto running = [&](const std::string& name) -> std::shared_ptr<pipeline::Pipeline> {
    for (const auto& p : current) {
      if (p->name() == name) return p;
    }
    return nullptr;
  };
  std::vector<std::shared_ptr<pipeline::Pipeline>> pipelines;
  int kept = 0, restarted = 0, started = 0, stopped = 0;
  for (const auto& d : next->destinations) {
    const DestinationConfig* before = old.Find(d.name);
    std::shared_ptr<pipeline::Pipeline> p = running(d.name);
    if (p && before && before->fingerprint == d.fingerprint && before->type == d.type) {
      // Kept running: it still needs the templates routes and calls may name.
      p->SetTemplates(next->templates);
      pipelines.push_back(std::move(p));
      ++kept;
      continue;
    }
    if (p) {
      // Changed: the old pipeline stops (what it had not committed stays in
      // the log) before the new one opens the same cursor and output.
      {
        std::lock_guard<std::mutex> lock(pipelines_mu_);
        pipelines_.erase(std::remove(pipelines_.begin(), pipelines_.end(), p), pipelines_.end());
      }
      p->Stop(/*drain=*/false, 0);
      ++restarted;
      spdlog::info("reload: destination {} changed; restarting it from its cursor", d.name);
    } else {
      ++started;
      spdlog::info("reload: new destination {}", d.name);
    }
    std::shared_ptr<pipeline::Pipeline> np;
    Status s = StartPipeline(d, *next, &np);
    if (!s.ok()) {
      spdlog::error("reload: {}", s.message());
      continue;
    }
    pipelines.push_back(std::move(np));
  }
  std::vector<std::shared_ptr<pipeline::Pipeline>> removed;
  for (const auto& p : current) {
    if (!next->Find(p->name())) removed.push_back(p);
  }
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    pipelines_ = pipelines;
    config_ = next;
  }
  ingest_->SetConfig(next);
  for (const auto& p : removed) {
    p->Stop(/*drain=*/false, 0);
    ++stopped;
    spdlog::info("reload: destination {} removed; its events stay in the log until the "
                 "other cursors pass them",
                 p->name());
  }
  spdlog::info("reload: done: {} kept running, {} restarted, {} new, {} stopped; {} routes", kept,
               restarted, started, stopped, next->routes.size());
}

void Server::Serve() {
  ingest_->Run();
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  const auto pipelines = Pipelines();
  spdlog::info("ingest stopped; draining {} destinations", pipelines.size());
  for (auto& p : pipelines) p->Stop(/*drain=*/true, /*drain_timeout_ms=*/30000);
  ingest_->Finish();
  Tick();
  const auto& st = ingest_->stats();
  spdlog::info("stopped: {} events accepted, {} duplicates dropped, {} rejected",
               st.events.load(), st.duplicates.load(), st.nacked.load());
  for (auto& p : pipelines) {
    spdlog::info("destination {}: {} delivered, {} dead-lettered, lsn {} committed", p->name(),
                 p->stats().delivered.load(), p->stats().dead_lettered.load(),
                 p->committed_next_lsn());
  }
}

void Server::RequestStop() {
  stopping_.store(true);
  if (ingest_) ingest_->Stop();
}

void Server::Tick() {
  const auto pipelines = Pipelines();
  if (!started_.load() || pipelines.empty()) return;
  uint64_t min_lsn = UINT64_MAX;
  for (auto& p : pipelines) min_lsn = std::min(min_lsn, p->committed_next_lsn());
  // Segments whose idempotency keys are not in the key journal yet stay.
  if (ingest_) min_lsn = std::min(min_lsn, ingest_->retain_from_lsn());
  const size_t n = log_->DeleteSegmentsBefore(min_lsn);
  if (n > 0) spdlog::debug("deleted {} log segments below lsn {}", n, min_lsn);
  if (!ingest_) return;
  // Blocking quotas: by index in the config ingest routes with.
  std::vector<std::string> full;
  for (auto& p : pipelines) {
    const auto& d = p->config();
    if (!d.backlog_shed && (d.backlog_max_bytes > 0 || d.backlog_max_events > 0) &&
        p->backlog_fill() >= 1.0) {
      full.push_back(d.name);
    }
  }
  ingest_->SetBlocked(std::move(full));
}

}  // namespace forkd

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
  const auto pipelines = Pipelines();
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
       "commit (the cursor)"},
      {"fork_destination_retries_total", "counter", "Flush retries"},
      {"fork_destination_dead_lettered_total", "counter", "Events sent to dead letters"},
      {"fork_destination_lag_events", "gauge", "Log entries the destination has not processed"},
      {"fork_destination_lag_seconds", "gauge", "Age of the last delivered event when lagging"},
      {"fork_destination_up", "gauge", "1 when the last flush succeeded"},
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
        labels += ",stage=\"send\"";
        v = static_cast<double>(st.failed.load());
      }
      if (n == "fork_destination_retries_total") v = static_cast<double>(st.retries.load());
      if (n == "fork_destination_dead_lettered_total") v = static_cast<double>(st.dead_lettered.load());
      if (n == "fork_destination_lag_events") v = static_cast<double>(lag);
      if (n == "fork_destination_lag_seconds") {
        const int64_t last = st.last_delivered_recv_us.load();
        v = lag > 0 && last > 0 ? static_cast<double>(now - last) / 1e6 : 0;
      }
      if (n == "fork_destination_up") v = p->healthy() ? 1 : 0;
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
      if (n == "fork_destination_put_rate") v = rates.count(p->name()) ? rates[p->name()].first : 0;
      if (n == "fork_destination_get_rate") v = rates.count(p->name()) ? rates[p->name()].second : 0;
      Sample(&m, s.name, labels, v);
    }
  }
  return m;
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
  Status s = dead_letters_->Read(destination, &lines);
  if (!s.ok()) return fail(500, s.message());
  auto wanted = [&](const pipeline::ParsedLetter& l) {
    return ids.empty() || std::find(ids.begin(), ids.end(), l.id) != ids.end();
  };
  std::set<std::string> taken;  // the lines acted on
  std::vector<std::string> events;
  uint64_t not_replayable = 0, bad = 0;
  for (const auto& line : lines) {
    pipeline::ParsedLetter l;
    std::string error;
    if (!pipeline::ParseLetter(line, &l, &error)) {
      ++bad;
      continue;
    }
    if (!wanted(l)) continue;
    if (action == "replay") {
      if (l.raw.empty() || l.id.empty()) {
        ++not_replayable;  // a shed range or an aggregate row
        continue;
      }
      events.push_back(pipeline::ReplayEvent(destination, l));
    }
    taken.insert(line);
  }
  if (!ids.empty() && taken.empty() && not_replayable == 0) {
    return fail(404, "no dead letter of " + destination + " has the id(s) given");
  }
  if (action == "replay") {
    s = ingest_->Inject(std::move(events), 10000);
    if (!s.ok()) return fail(503, "replay: " + s.message());
  }
  size_t removed = 0;
  s = dead_letters_->Rewrite(
      destination, [&](const std::string& line) { return taken.count(line) == 0; }, &removed);
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
      .append("}\n");
  return 200;
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
  j.append("\"version\":\"" FORKD_VERSION "\",");
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
  j.append("},\"destinations\":[");
  std::vector<std::shared_ptr<pipeline::Pipeline>> pipelines;
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    pipelines = pipelines_;
  }
  for (size_t i = 0; i < pipelines.size(); ++i) {
    const auto& p = pipelines[i];
    const auto& st = p->stats();
    const uint64_t lag = end - std::min(end, p->delivered_next_lsn());
    const int64_t last = st.last_delivered_recv_us.load();
    if (i) j.push_back(',');
    j.append("{\"name\":");
    sinks::AppendJsonString(p->name(), &j);
    j.append(",\"type\":");
    sinks::AppendJsonString(p->type(), &j);
    j.append(",\"state\":\"").append(p->healthy() ? "ok" : "failing").append("\",");
    static const char* kBreaker[] = {"closed", "open", "half-open"};
    j.append("\"breaker\":\"").append(kBreaker[static_cast<int>(p->breaker_state())]).append("\",");
    j.append("\"priority\":\"")
        .append(p->config().priority == Priority::kHigh  ? "high"
                : p->config().priority == Priority::kLow ? "low"
                                                         : "normal")
        .append("\",");
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
    num("lag_seconds", lag > 0 && last > 0 ? static_cast<double>(now - last) / 1e6 : 0);
    num("committed_lsn", static_cast<double>(p->committed_next_lsn()));
    j.append("\"last_error\":");
    sinks::AppendJsonString(p->last_error(), &j);
    j.push_back('}');
  }
  j.append("]}");
  return j;
}

}  // namespace forkd
