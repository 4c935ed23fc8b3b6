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
#include <thread>

#include "core/clock.h"
#include "core/fs.h"
#include "core/instance.h"
#include "log/backlog.h"
#include "sinks/common/json.h"
#include "sinks/registry.h"
#include "streams/hub.h"

namespace forkd {
namespace {

// A removed destination gets this long to deliver what it has left before
// its pipeline stops (the reload waits for it; removed ones drain together).
constexpr int64_t kRemovedDrainMs = 2000;
// Ingest takes a new config before the next frame it reads, and what it took
// under the old one is durable within a group commit; the events routed to a
// removed destination are counted once this has passed.
constexpr int64_t kRemovedCountDelayUs = 1000000;

std::string RemovedWarning(const std::string& name, uint64_t undelivered, uint64_t from_lsn) {
  return "destination " + name + " is no longer configured and has " +
         std::to_string(undelivered) + " undelivered events (from lsn " +
         std::to_string(from_lsn) +
         "); its cursor keeps them in the log until it is configured again (it resumes "
         "there) or `forkd cursors drop " +
         name + "` gives them up";
}

}  // namespace

Server::~Server() {
  streams::CloseAllHubs();  // subscribers' threads return, so the admin server can stop
  if (admin_) admin_->Stop();
  if (verify_) verify_->Stop();
  StopEventIndex();
  StopSources();
  http_ingest_.reset();
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

  {
    // Which of the replicas this is: before any pipeline, whose aggregate
    // rows carry it.
    Config c = *config_;
    std::string warning;
    s = ResolveInstance(c.data_dir, config_->instance, &c.instance, &warning);
    if (!s.ok()) return s;
    if (!warning.empty()) spdlog::warn("{}", warning);
    spdlog::info("instance {}", c.instance);
    config_ = std::make_shared<const Config>(std::move(c));
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
  s = AdoptRemovedCursors();
  if (!s.ok()) return s;

  // At start-up a destination that cannot start stops forkd: nothing runs
  // yet that an exit would interrupt, and the supervisor and the operator
  // see the error at once. (A reload keeps it as failed instead.)
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
  StartEventIndex();
  s = ingest_->Bind();
  if (!s.ok()) return s;
  if (config_->http_ingest.enabled()) {
    http_ingest_ = std::make_unique<ingest::http::HttpIngest>(
        ingest_->context(), ingest::Ingest::kInprocEndpoint, config_->http_ingest,
        static_cast<size_t>(config_->max_event), static_cast<size_t>(config_->max_frame));
    s = http_ingest_->Start();
    if (!s.ok()) return s;
  }
  ApplySources(*config_);
  if (config_->admin.enabled()) {
    admin::Handlers handlers;
    handlers.ready = [this] { return started_.load(); };
    handlers.metrics = [this] { return MetricsText(); };
    handlers.status = [this] { return StatusJson(); };
    handlers.dlq = [this](const std::string& action, const std::string& dest,
                          const std::vector<std::string>& ids,
                          std::string* body) { return Dlq(action, dest, ids, body); };
    handlers.cursor_drop = [this](const std::string& dest, std::string* body) {
      return DropCursor(dest, body);
    };
    handlers.replay = [this](const std::string& dest, const std::string& since,
                             const std::string& from_id,
                             std::string* body) { return Replay(dest, since, from_id, body); };
    handlers.event = [this](const std::string& id, std::string* body) { return EventStatus(id, body); };
    handlers.history = [this](int64_t since) { return HistoryJson(since); };
    handlers.stream_policy = [this](const std::string& name) { return StreamPolicyFor(name); };
    handlers.stream = [this](const std::string& name, const httplib::Request& req,
                             httplib::Response& res) { ServeStream(name, req, res); };
    for (const auto& d : config_->destinations) {
      if (d.type == "stream") handlers.stream_threads += static_cast<size_t>(d.sink.Int("max_subscribers"));
    }
    handlers.stream_threads = std::min<size_t>(handlers.stream_threads, 4096);
    admin_ = std::make_unique<admin::AdminServer>(std::move(handlers));
    s = admin_->Start(config_->admin);
    if (!s.ok()) return s;
    // Where the token came from, never the token.
    if (config_->admin.token.empty()) {
      spdlog::info("admin on http://{}/ without a token: POSTs are taken only from local "
                   "clients that are not cross-origin web pages",
                   config_->admin.listen);
    } else {
      spdlog::info("admin on http://{}/ (POSTs need the token from {})", config_->admin.listen,
                   config_->admin.token_source);
    }
  }
  verify_ = std::make_unique<verify::Scheduler>(
      [this] {
        std::lock_guard<std::mutex> lock(pipelines_mu_);
        return config_;
      },
      config_->instance);
  verify_->Start();
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

Status Server::AdoptRemovedCursors() {
  std::vector<std::string> names;
  Status s = cursors_->List(&names);
  if (!s.ok()) return s;
  std::vector<RemovedCursor> found;
  std::map<std::string, uint64_t> from;
  for (const auto& name : names) {
    if (config_->Find(name) != nullptr) continue;
    RemovedCursor r;
    r.name = name;
    log::Cursor c;
    s = cursors_->Load(name, &c);
    if (s.ok()) {
      r.hold = c.position;
    } else {
      // Nothing says how far it got: all of the log stays for it.
      r.hold = log::Position{log_->first_lsn(), 0, 0};
      spdlog::warn("cursor of destination {} (not configured): {}; it holds the log from the "
                   "oldest entry (lsn {})",
                   name, s.message(), r.hold.next_lsn);
    }
    from[name] = r.hold.next_lsn;
    found.push_back(std::move(r));
  }
  if (found.empty()) return Status::Ok();
  std::map<std::string, uint64_t> counts;
  s = log::CountRouted(log_.get(), from, log_->durable_next_lsn(), &counts);
  if (!s.ok()) {
    return Status::IoError("reading the log for destinations no longer configured: " +
                           s.message());
  }
  for (auto& r : found) {
    r.undelivered = counts[r.name];
    if (r.undelivered == 0) {
      s = cursors_->Remove(r.name);
      if (!s.ok()) return s;
      spdlog::info("cursor of destination {} deleted: it is no longer configured and every "
                   "event routed to it was delivered",
                   r.name);
      continue;
    }
    spdlog::warn("{}", RemovedWarning(r.name, r.undelivered, r.hold.next_lsn));
    removed_.push_back(std::move(r));
  }
  return Status::Ok();
}

int64_t Server::StartRetryDelayMs(int failures) {
  constexpr int64_t kFirstMs = 1000, kMaxMs = 30000;
  if (failures <= 1) return kFirstMs;
  if (failures > 6) return kMaxMs;
  return std::min(kMaxMs, kFirstMs << (failures - 1));
}

log::Position Server::HoldFor(const DestinationConfig& d) const {
  log::Cursor c;
  const Status s = cursors_->Load(d.name, &c);
  if (s.ok()) return c.position;
  // Never started: where it would have. A damaged cursor restarts from the
  // oldest entry too.
  if (s.IsNotFound() && !d.from_earliest) return log::Position{log_->durable_next_lsn(), 0, 0};
  return log::Position{log_->first_lsn(), 0, 0};
}

bool Server::StartOrHold(const DestinationConfig& d, const Config& c,
                         std::shared_ptr<pipeline::Pipeline>* out) {
  const int64_t now = MonoMicros();
  FailedStart held;
  bool was_failed = false;
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    for (const auto& f : failed_) {
      if (f.name == d.name) {
        held = f;
        was_failed = true;
      }
    }
  }
  Status s = Status::Ok();
  if (was_failed && !d.from_earliest) {
    // It never got a cursor: one at its hold makes it start where it was
    // held, not at the log's end, so the events taken for it meanwhile are
    // its first. (With `from: earliest` the pipeline's own backfill covers them.)
    log::Cursor existing;
    if (cursors_->Load(d.name, &existing).IsNotFound()) {
      log::Cursor start;
      start.position = held.hold;
      s = cursors_->Save(d.name, start);
      if (!s.ok()) s = Status::IoError("destination " + d.name + ": " + s.message());
    }
  }
  if (s.ok()) s = StartPipeline(d, c, out);
  std::lock_guard<std::mutex> lock(pipelines_mu_);
  failed_.erase(std::remove_if(failed_.begin(), failed_.end(),
                               [&](const FailedStart& f) { return f.name == d.name; }),
                failed_.end());
  if (s.ok()) {
    if (was_failed) {
      spdlog::info("destination {} started after {} failed attempts; it resumes at lsn {}", d.name,
                   held.failures, (*out)->committed_next_lsn());
    }
    return true;
  }
  if (!was_failed) {
    held.name = d.name;
    held.hold = HoldFor(d);
  }
  held.error = s.message();
  ++held.failures;
  const int64_t delay_ms = StartRetryDelayMs(held.failures);
  held.next_retry_us = now + delay_ms * 1000;
  ++start_failures_[d.name];
  spdlog::error("{}; it keeps its cursor and the log from lsn {}, and is tried again in {} s "
                "(attempt {} failed)",
                s.message(), held.hold.next_lsn, delay_ms / 1000.0, held.failures);
  failed_.push_back(std::move(held));
  return false;
}

void Server::SortPipelines() {
  auto index = [&](const std::string& name) {
    for (size_t i = 0; i < config_->destinations.size(); ++i) {
      if (config_->destinations[i].name == name) return i;
    }
    return config_->destinations.size();
  };
  std::stable_sort(pipelines_.begin(), pipelines_.end(),
                   [&](const auto& a, const auto& b) {
                     return index(a->name()) < index(b->name());
                   });
  std::stable_sort(failed_.begin(), failed_.end(),
                   [&](const auto& a, const auto& b) { return index(a.name) < index(b.name); });
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
  if (!next_config.instance.empty() && next_config.instance != old.instance) {
    spdlog::warn("reload: instance '{}' is ignored: this forkd is instance '{}' for as long as "
                 "its data_dir lives",
                 next_config.instance, old.instance);
  }
  next_config.instance = old.instance;
  keep("listen", next_config.listen == old.listen);
  keep("curve", next_config.curve.secret_key == old.curve.secret_key &&
                    next_config.curve.clients == old.curve.clients &&
                    next_config.insecure_tcp == old.insecure_tcp);
  keep("admin", next_config.admin.listen == old.admin.listen &&
                    next_config.admin.token == old.admin.token);
  keep("http_ingest", next_config.http_ingest == old.http_ingest);
  keep("wal", next_config.fsync == old.fsync && next_config.batch_ms == old.batch_ms &&
                  next_config.segment_bytes == old.segment_bytes);
  keep("limits", next_config.max_frame == old.max_frame && next_config.max_event == old.max_event &&
                     next_config.limits.max_depth == old.limits.max_depth);
  keep("dedupe", next_config.dedupe_window_ms == old.dedupe_window_ms &&
                     next_config.dedupe_max_keys == old.dedupe_max_keys &&
                     next_config.dedupe_recover_bytes == old.dedupe_recover_bytes);
  next_config.data_dir = old.data_dir;
  next_config.listen = old.listen;
  next_config.curve = old.curve;
  next_config.insecure_tcp = old.insecure_tcp;
  next_config.admin = old.admin;
  next_config.http_ingest = old.http_ingest;
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
  if (alerts_) QueueAlerts(alerts_->SetConfig(next->alerts, WallMicros() / 1000), *next);

  std::vector<std::shared_ptr<pipeline::Pipeline>> current = Pipelines();
  std::vector<FailedStart> failed_before;
  std::vector<RemovedCursor> removed_before;
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    failed_before = failed_;
    removed_before = removed_;
  }
  auto running = [&](const std::string& name) -> std::shared_ptr<pipeline::Pipeline> {
    for (const auto& p : current) {
      if (p->name() == name) return p;
    }
    return nullptr;
  };
  auto failed_start = [&](const std::string& name) -> const FailedStart* {
    for (const auto& f : failed_before) {
      if (f.name == name) return &f;
    }
    return nullptr;
  };
  auto removed_cursor = [&](const std::string& name) -> const RemovedCursor* {
    for (const auto& r : removed_before) {
      if (r.name == name) return &r;
    }
    return nullptr;
  };
  std::vector<std::shared_ptr<pipeline::Pipeline>> pipelines;
  int kept = 0, restarted = 0, started = 0, stopped = 0, failed = 0;
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
    } else if (const FailedStart* f = failed_start(d.name)) {
      ++restarted;
      spdlog::info("reload: destination {} had failed to start ({}); trying it again now", d.name,
                   f->error);
    } else if (const RemovedCursor* r = removed_cursor(d.name)) {
      ++started;
      spdlog::info("reload: destination {} is configured again; it resumes from its cursor at lsn "
                   "{}",
                   d.name, r->hold.next_lsn);
    } else {
      ++started;
      spdlog::info("reload: new destination {}", d.name);
    }
    std::shared_ptr<pipeline::Pipeline> np;
    if (!StartOrHold(d, *next, &np)) {
      ++failed;
      continue;
    }
    pipelines.push_back(std::move(np));
  }
  std::vector<std::shared_ptr<pipeline::Pipeline>> removed;
  for (const auto& p : current) {
    if (!next->Find(p->name())) removed.push_back(p);
  }
  std::vector<FailedStart> failed_removed;
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    for (const auto& f : failed_) {
      if (!next->Find(f.name)) failed_removed.push_back(f);
    }
    failed_.erase(std::remove_if(failed_.begin(), failed_.end(),
                                 [&](const FailedStart& f) { return !next->Find(f.name); }),
                  failed_.end());
    // Configured again: its cursor is a pipeline's, or a failed start's, now.
    removed_.erase(std::remove_if(removed_.begin(), removed_.end(),
                                  [&](const RemovedCursor& r) { return next->Find(r.name); }),
                   removed_.end());
    // A removed destination holds the log from its cursor from now on, so
    // that nothing is deleted under it while it drains and is counted.
    for (const auto& p : removed) {
      removed_.push_back(RemovedCursor{p->name(), log::Position{p->committed_next_lsn(), 0, 0}, 0,
                                       MonoMicros() + kRemovedCountDelayUs});
    }
    for (const auto& f : failed_removed) {
      removed_.push_back(RemovedCursor{f.name, f.hold, 0, MonoMicros() + kRemovedCountDelayUs});
    }
    pipelines_ = pipelines;
    config_ = next;
    SortPipelines();
  }
  ingest_->SetConfig(next);
  ApplySources(*next);
  // Removed ones deliver what they can, together, for a moment.
  {
    std::vector<std::thread> stopping;
    for (const auto& p : removed) {
      stopping.emplace_back([p] { p->Stop(/*drain=*/true, kRemovedDrainMs); });
    }
    for (auto& t : stopping) t.join();
  }
  for (const auto& p : removed) {
    ++stopped;
    log::Cursor c;
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    for (auto& r : removed_) {
      if (r.name != p->name()) continue;
      // The cursor as drained, with its segment hint.
      r.hold = cursors_->Load(r.name, &c).ok() ? c.position
                                               : log::Position{p->committed_next_lsn(), 0, 0};
    }
    spdlog::info("reload: destination {} removed at lsn {}; its cursor keeps the log from there "
                 "until the events routed to it are counted",
                 p->name(), p->committed_next_lsn());
  }
  for (const auto& f : failed_removed) {
    ++stopped;
    // One that never got a cursor gets one now, so a restart keeps holding.
    log::Cursor c;
    if (cursors_->Load(f.name, &c).IsNotFound()) {
      c.position = f.hold;
      Status s = cursors_->Save(f.name, c);
      if (!s.ok()) {
        spdlog::error("reload: destination {} removed; its cursor (lsn {}) could not be saved "
                      "({}): it holds the log only until forkd restarts",
                      f.name, f.hold.next_lsn, s.message());
      }
    }
    spdlog::info("reload: destination {} removed (it had failed to start); its cursor keeps the "
                 "log from lsn {} until the events routed to it are counted",
                 f.name, f.hold.next_lsn);
  }
  spdlog::info("reload: done: {} kept running, {} restarted, {} new, {} stopped; {} routes{}", kept,
               restarted, started, stopped, next->routes.size(),
               failed > 0 ? "; " + std::to_string(failed) + " failed to start (tried again later)"
                          : std::string());
}

void Server::Serve() {
  ingest_->Run();
  StopSources();
  if (http_ingest_) http_ingest_->Stop();
  if (verify_) verify_->Stop();
  std::lock_guard<std::mutex> reload_lock(reload_mu_);
  const auto pipelines = Pipelines();
  spdlog::info("ingest stopped; draining {} destinations", pipelines.size());
  for (auto& p : pipelines) p->Stop(/*drain=*/true, /*drain_timeout_ms=*/30000);
  ingest_->Finish();
  Retain();
  const auto& st = ingest_->stats();
  spdlog::info("stopped: {} events accepted, {} duplicates dropped, {} rejected",
               st.events.load(), st.duplicates.load(), st.nacked.load());
  for (auto& p : pipelines) {
    spdlog::info("destination {}: {} delivered, {} dead-lettered, lsn {} committed", p->name(),
                 p->stats().delivered.load(), p->stats().dead_lettered.load(),
                 p->committed_next_lsn());
  }
  std::lock_guard<std::mutex> lock(pipelines_mu_);
  for (const auto& f : failed_) {
    spdlog::warn("destination {}: not running ({}); its cursor holds the log from lsn {}", f.name,
                 f.error, f.hold.next_lsn);
  }
  for (const auto& r : removed_) {
    spdlog::warn("destination {}: no longer configured; its cursor holds the log from lsn {}",
                 r.name, r.hold.next_lsn);
  }
}

void Server::RequestStop() {
  stopping_.store(true);
  // Requests being served, and the batch each source is sending, get their
  // answers while ingest still runs.
  if (http_ingest_) http_ingest_->Stop();
  StopSources();
  if (ingest_) ingest_->Stop();
}

void Server::Tick() {
  if (!started_.load()) return;
  // Busy with a reload, a shutdown or a cursor drop: the next tick will do.
  std::unique_lock<std::mutex> reload_lock(reload_mu_, std::try_to_lock);
  if (!reload_lock.owns_lock()) return;
  if (!stopping_.load()) RetryFailedStarts();
  CountRemoved(/*now=*/false);
  Retain();
  if (!ingest_) return;
  // Blocking quotas: by index in the config ingest routes with. A destination
  // that failed to start fills its quota all the same.
  std::vector<std::string> full;
  auto blocks = [](const DestinationConfig& d) {
    return !d.backlog_shed && (d.backlog_max_bytes > 0 || d.backlog_max_events > 0);
  };
  for (auto& p : Pipelines()) {
    if (blocks(p->config()) && p->backlog_fill() >= 1.0) full.push_back(p->name());
  }
  std::shared_ptr<const Config> config;
  std::vector<FailedStart> failed;
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    config = config_;
    failed = failed_;
  }
  for (const auto& f : failed) {
    const DestinationConfig* d = config->Find(f.name);
    if (d && blocks(*d) && HoldFill(*d, f.hold) >= 1.0) full.push_back(f.name);
  }
  ingest_->SetBlocked(std::move(full));
  if (stopping_.load()) return;
  RecordHistory(SnapshotDestinations());
  EvaluateAlerts();
  PublishAlerts();
}

void Server::RetryFailedStarts() {
  std::shared_ptr<const Config> config;
  std::vector<std::string> due;
  const int64_t now = MonoMicros();
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    config = config_;
    for (const auto& f : failed_) {
      if (f.next_retry_us <= now) due.push_back(f.name);
    }
  }
  for (const auto& name : due) {
    const DestinationConfig* d = config->Find(name);
    if (d == nullptr) continue;
    std::shared_ptr<pipeline::Pipeline> p;
    if (!StartOrHold(*d, *config, &p)) continue;
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    pipelines_.push_back(std::move(p));
    SortPipelines();
  }
}

void Server::CountRemoved(bool now) {
  std::map<std::string, uint64_t> from;
  const int64_t mono = MonoMicros();
  {
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    for (const auto& r : removed_) {
      if (r.count_at_us != 0 && (now || r.count_at_us <= mono)) from[r.name] = r.hold.next_lsn;
    }
  }
  if (from.empty()) return;
  std::map<std::string, uint64_t> counts;
  Status s = log::CountRouted(log_.get(), from, log_->durable_next_lsn(), &counts);
  if (!s.ok()) {
    // They keep holding; counted again at the next tick.
    spdlog::error("counting the events of removed destinations: {}", s.message());
    return;
  }
  for (const auto& [name, undelivered] : counts) {
    if (undelivered == 0) {
      // Everything routed to it was delivered: it holds nothing, and if it is
      // configured again it starts as a new destination.
      s = cursors_->Remove(name);
      if (!s.ok()) {
        spdlog::error("destination {} (removed): its cursor could not be deleted ({}); it keeps "
                      "holding the log",
                      name, s.message());
      } else {
        spdlog::info("destination {} (removed): every event routed to it was delivered; its "
                     "cursor is deleted",
                     name);
      }
    }
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    for (auto it = removed_.begin(); it != removed_.end(); ++it) {
      if (it->name != name) continue;
      if (undelivered == 0 && s.ok()) {
        removed_.erase(it);
      } else {
        it->undelivered = undelivered;
        it->count_at_us = 0;
        if (undelivered > 0) {
          spdlog::warn("{}", RemovedWarning(name, undelivered, it->hold.next_lsn));
        }
      }
      break;
    }
  }
}

void Server::Retain() {
  const auto pipelines = Pipelines();
  uint64_t min_lsn = UINT64_MAX;
  bool any = false;
  for (auto& p : pipelines) {
    min_lsn = std::min(min_lsn, p->committed_next_lsn());
    any = true;
  }
  {
    // Destinations that cannot run hold the log as if they could.
    std::lock_guard<std::mutex> lock(pipelines_mu_);
    for (const auto& f : failed_) {
      min_lsn = std::min(min_lsn, f.hold.next_lsn);
      any = true;
    }
    for (const auto& r : removed_) {
      min_lsn = std::min(min_lsn, r.hold.next_lsn);
      any = true;
    }
  }
  if (!started_.load() || !any) return;
  // Segments whose idempotency keys are not in the key journal yet stay.
  if (ingest_) min_lsn = std::min(min_lsn, ingest_->retain_from_lsn());
  // Passed segments stay as history for replay and `from: earliest`, as
  // wal.retention allows (a reload changes it).
  log::RetentionPolicy policy;
  policy.max_age_us = config_->retention_max_age_ms * 1000;
  policy.max_bytes = static_cast<uint64_t>(config_->retention_max_bytes);
  const size_t n = log_->DeleteSegments(min_lsn, WallMicros(), policy);
  if (n > 0) spdlog::debug("deleted {} log segments below lsn {}", n, min_lsn);
}

double Server::HoldFill(const DestinationConfig& d, const log::Position& hold) const {
  double fill = 0;
  if (d.backlog_max_events > 0) {
    const uint64_t end = log_->durable_next_lsn();
    fill = static_cast<double>(end - std::min(end, hold.next_lsn)) /
           static_cast<double>(d.backlog_max_events);
  }
  if (d.backlog_max_bytes > 0) {
    fill = std::max(fill, static_cast<double>(log_->BytesFrom(hold)) /
                              static_cast<double>(d.backlog_max_bytes));
  }
  return fill;
}

}  // namespace forkd
