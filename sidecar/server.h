// The running forkd: wires the log, the pipelines and ingest together, and
// shuts them down in order (ingest stops taking events, the log commits what
// it has, pipelines drain, cursors persist).
#pragma once

#include <atomic>
#include <deque>
#include <map>
#include <string>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "admin/admin_server.h"
#include "admin/history.h"
#include "ingest/http/http_ingest.h"
#include "sources/source.h"
#include "alerts/rule_evaluator.h"
#include "config/config.h"
#include "ingest/ingest.h"
#include "log/cursors.h"
#include "log/event_indexer.h"
#include "log/log.h"
#include "pipeline/dead_letters.h"
#include "pipeline/outcomes.h"
#include "pipeline/pipeline.h"
#include "verify/scheduler.h"

namespace forkd {

class Server {
 public:
  explicit Server(Config config) : config_(std::make_shared<const Config>(std::move(config))) {}
  ~Server();

  // Opens the data directory (locked against a second forkd), recovers the
  // log, starts the pipelines and binds the socket.
  [[nodiscard]] Status Start();
  // Serves until RequestStop(); then drains and returns.
  void Serve();
  // Thread-safe, async-signal-unsafe: call from the signal thread.
  void RequestStop();
  // Housekeeping, several times a second, on the signal thread: retries the
  // destinations whose pipeline failed to start, deletes the segments every
  // cursor has passed (those of failed and removed destinations included)
  // once wal.retention lets them go, and tells ingest which destinations are past a blocking backlog quota.
  void Tick();

  const Config& config() const { return *config_; }
  // Switches to `next` (already validated): destinations that did not change
  // keep running, changed ones restart from their cursor, removed ones stop,
  // new ones start. A destination whose pipeline fails to start stays in the
  // set as failed: it keeps its cursor and the log from it, and Tick()
  // retries it. A removed destination delivers what it can for a moment;
  // if events routed to it are left undelivered, its cursor stays and holds
  // them in the log until it is configured again or DropCursor() releases
  // them. Settings that need a restart (data_dir, listen, wal, limits,
  // dedupe, admin) keep their old values, with a warning. Call from the
  // thread that called Serve()'s caller (the signal thread).
  void Reload(Config next);
  // For the admin server: Prometheus text and the /api/status JSON.
  std::string MetricsText() const;
  std::string StatusJson() const;
  // For the admin API: "replay" puts dead letters of `destination` (all, or
  // those with `ids`) back into the log for it, then removes them from the
  // dead letters; "drop" only removes them. Returns an HTTP status and sets
  // *body to a JSON answer. A replay checks each letter as ingest checks an
  // event (pipeline::ReplayEvent); one that fails is not injected, stays in
  // the file, and is named in the answer's "errors" (file:line: id: why),
  // while the others are replayed.

  int Dlq(const std::string& action, const std::string& destination,
          const std::vector<std::string>& ids, std::string* body);
  // For the admin API: deletes the cursor of a destination that is no longer
  // configured, so the log it held can go; its undelivered events are given
  // up. Refused (409) for a configured destination. Returns an HTTP status
  // and sets *body to a JSON answer. Any thread.
  int DropCursor(const std::string& destination, std::string* body);
  // For the admin API (`forkd replay`): moves the cursor of `destination`
  // back to the first retained event received in the last `since` (a
  // duration: "10m") or to the event whose id is `from_id` (one of the two),
  // and restarts its pipeline there, so what follows is delivered again.
  // Its pipeline stops first (what it had not committed stays in the log),
  // and retention waits meanwhile. 400 bad arguments, 404 unknown
  // destination, 409 one that cannot be replayed (aggregates, not running),
  // 422 not in the retained log. Returns an HTTP status and sets *body to a
  // JSON answer. Any thread.
  int Replay(const std::string& destination, const std::string& since,
             const std::string& from_id, std::string* body);

  // For the admin API: GET /api/events/<id> (server_events.cc). `id` is a
  // receipt id or an idempotency key; *body the JSON answer: where the event
  // is in the log and, per destination, delivered / pending /
  // dead_lettered / filtered (or expired, beyond the retained log). 200, 400
  // (a malformed id), 404 (unknown), 503 (not running, or the index still
  // being built). Any thread; reads the log, never blocks ingest.
  int EventStatus(const std::string& id, std::string* body) const;

  // After `failures` failed starts in a row: milliseconds until the next
  // attempt (1 s, doubling, at most 30 s).
  static int64_t StartRetryDelayMs(int failures);

 private:
  std::shared_ptr<const Config> config_;
  [[nodiscard]] Status StartPipeline(const DestinationConfig& d, const Config& c,
                                     std::shared_ptr<pipeline::Pipeline>* out);
  // Snapshot of the running pipelines, for any thread.
  std::vector<std::shared_ptr<pipeline::Pipeline>> Pipelines() const;

  // A configured destination whose pipeline did not start (at a reload, or
  // at every retry since). It keeps its place: the log from `hold` stays,
  // events routed to it are taken and wait there, and Tick() retries it.
  struct FailedStart {
    std::string name;
    log::Position hold;
    std::string error;
    int failures = 0;
    int64_t next_retry_us = 0;  // MonoMicros
  };
  // A destination no longer configured whose cursor file is still there: the
  // log from `hold` stays until it is configured again or its cursor is
  // dropped. Until `count_at_us` passes the events routed to it are not
  // counted yet (ingest takes a new config before its next frame, so a
  // reload's last events may still be on their way); then, with none
  // undelivered, its cursor is deleted and it holds nothing.
  struct RemovedCursor {
    std::string name;
    log::Position hold;
    uint64_t undelivered = 0;
    int64_t count_at_us = 0;  // MonoMicros; 0: counted
  };
  // The destinations' state, copied under pipelines_mu_ for a reader
  // (metrics, status).
  struct Destinations {
    std::shared_ptr<const Config> config;
    std::vector<std::shared_ptr<pipeline::Pipeline>> pipelines;
    std::vector<FailedStart> failed;
    std::vector<RemovedCursor> removed;
    std::map<std::string, uint64_t> start_failures;
  };
  Destinations SnapshotDestinations() const;

  // Starts `d`, or records it as failed (its hold chosen from its cursor).
  // Returns whether it runs. Call with reload_mu_ held.
  bool StartOrHold(const DestinationConfig& d, const Config& c,
                   std::shared_ptr<pipeline::Pipeline>* out);
  // Where a destination that cannot run holds the log: its cursor, or for one
  // that never had a cursor, the point it would have started from.
  log::Position HoldFor(const DestinationConfig& d) const;
  // Tick's parts; each with reload_mu_ held.
  void RetryFailedStarts();
  void CountRemoved(bool now);
  void Retain();
  // Cursor files of destinations not in the config, at start-up.
  [[nodiscard]] Status AdoptRemovedCursors();
  // Puts pipelines_ in config order. With pipelines_mu_ held.
  void SortPipelines();
  // The log bytes and the fill of a backlog quota held from `hold`.
  double HoldFill(const DestinationConfig& d, const log::Position& hold) const;
  int lock_fd_ = -1;
  std::unique_ptr<log::Log> log_;
  std::unique_ptr<log::CursorStore> cursors_;
  std::unique_ptr<pipeline::DeadLetters> dead_letters_;
  pipeline::PriorityGate priority_gate_;
  pipeline::Outcomes outcomes_;  // outlives the pipelines and ingest
  // Guards the destinations' state below; held only briefly, by any thread.
  mutable std::mutex pipelines_mu_;
  std::vector<std::shared_ptr<pipeline::Pipeline>> pipelines_;  // guarded; config order
  std::vector<FailedStart> failed_;                              // guarded; config order
  std::vector<RemovedCursor> removed_;                           // guarded; by name
  std::map<std::string, uint64_t> start_failures_;               // guarded; since start-up
  // Serializes Reload, Tick's retries and retention, and DropCursor.
  std::mutex reload_mu_;
  std::unique_ptr<ingest::Ingest> ingest_;
  std::unique_ptr<admin::AdminServer> admin_;
  // After ingest_: destroyed first, its DEALERs closed before ingest's context.
  std::unique_ptr<ingest::http::HttpIngest> http_ingest_;

  // Sources (server_sources.cc): started after ingest binds, stopped before
  // it stops; a reload restarts those whose section changed.
  struct RunningSource {
    std::string name;
    std::string type;
    std::string fingerprint;
    std::unique_ptr<sources::Source> source;
  };
  mutable std::mutex sources_mu_;
  std::vector<RunningSource> sources_;  // guarded by sources_mu_
  // Starts every source of `config` not running with the same section;
  // stops the others. A source that fails to start is logged and left out.
  void ApplySources(const Config& config);
  void StopSources();
  void SourceMetricsText(std::string* m) const;
  // "sources":[{name, type, last_error, <metric>: value ...}],
  void SourcesJson(std::string* j) const;
  // The scheduled `forkd verify` (the config's `verify:`); idle without it.
  std::unique_ptr<verify::Scheduler> verify_;
  // GET /streams/<name> (server_streams.cc): who may subscribe, and the
  // subscription, on an admin worker thread.
  admin::Handlers::StreamPolicy StreamPolicyFor(const std::string& name) const;
  void ServeStream(const std::string& name, const httplib::Request& req, httplib::Response& res);
  // The fork_verify_* series, appended to the metrics text.
  void VerifyMetrics(std::string* m) const;
  struct RatePoint {
    int64_t at_us = 0;
    uint64_t put = 0;
    uint64_t get = 0;
  };
  mutable std::mutex rates_mu_;
  mutable std::map<std::string, RatePoint> rate_prev_;  // guarded by rates_mu_
  // A destination's lag in seconds: now minus the receipt time of the oldest
  // entry a cursor at `from` has not processed, 0 when it has processed
  // everything below `end`. Any thread.
  double LagSeconds(const std::string& name, const log::Position& from, uint64_t end,
                    int64_t now_us) const;
  struct OldestHeld {
    uint64_t lsn = 0;  // the cursor's next_lsn it was read for
    int64_t recv_us = 0;
  };
  mutable std::mutex lag_mu_;
  mutable std::map<std::string, OldestHeld> oldest_held_;  // guarded by lag_mu_
  // Alerts, on the signal thread with reload_mu_ held: Tick reads the
  // signals, runs the rules and appends the events of their transitions to
  // the log (server_alerts.cc); Reload hands the evaluator the new rules.
  void EvaluateAlerts();
  alerts::Reading ReadSignals(const Destinations& snapshot) const;
  void QueueAlerts(const std::vector<alerts::Transition>& transitions, const Config& config);
  uint64_t DeadLetterLines(const std::string& destination);
  std::unique_ptr<alerts::RuleEvaluator> alerts_;
  std::vector<std::string> alert_events_;  // encoded, not yet handed to ingest
  struct DeadLetterFile {
    int64_t size = -1;
    int64_t mtime_ns = 0;
    uint64_t lines = 0;
  };
  std::map<std::string, DeadLetterFile> dead_letter_files_;  // counted when they change
  // The event index (server_events.cc): its own thread follows the log,
  // indexes each entry's id, and samples where each destination's delivery
  // stands every kTrailEveryMs, so "delivered at" is known to that
  // precision for the last kTrailPoints moves of each destination.
  static constexpr int64_t kTrailEveryMs = 50;
  static constexpr size_t kTrailPoints = 8192;
  void StartEventIndex();
  void StopEventIndex();
  void RunEventIndex();
  void SampleDeliveries();
  struct Passed {
    int64_t at_us = 0;         // wall clock when it was first seen there
    int64_t last_us = 0;       // and last seen there
    uint64_t next_lsn = 0;     // the destination's delivered_next_lsn()
  };
  std::unique_ptr<log::EventIndexer> events_;
  std::thread events_thread_;
  std::atomic<bool> events_stop_{false};
  mutable std::mutex trail_mu_;
  std::map<std::string, std::deque<Passed>> trail_;  // guarded by trail_mu_
  // The dashboard (server_dashboard.cc). Tick records a sample of every
  // destination into history_ once a second, on the signal thread with
  // reload_mu_ held, and copies the alerts firing for the admin threads.
  void RecordHistory(const Destinations& snapshot);
  void PublishAlerts();
  std::string HistoryJson(int64_t since) const;
  // Appends `"alerts_firing":[...],` to the /api/status JSON.
  void AppendAlertsFiring(std::string* j) const;
  // A destination's condition for people: running, retrying, breaker_open
  // (open or half-open) or failed (its pipeline did not start).
  static const char* Condition(const pipeline::Pipeline* p);
  admin::History history_;
  int64_t history_at_ = 0;  // the unix second last recorded; signal thread
  mutable std::mutex firing_mu_;
  std::vector<alerts::Transition> firing_;  // guarded by firing_mu_
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  int64_t start_us_ = 0;
};

}  // namespace forkd
