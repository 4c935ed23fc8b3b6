// The running forkd: wires the log, the pipelines and ingest together, and
// shuts them down in order (ingest stops taking events, the log commits what
// it has, pipelines drain, cursors persist).
#pragma once

#include <atomic>
#include <map>
#include <string>
#include <memory>
#include <mutex>
#include <vector>

#include "admin/admin_server.h"
#include "core/config.h"
#include "ingest/ingest.h"
#include "log/cursors.h"
#include "log/log.h"
#include "pipeline/dead_letters.h"
#include "pipeline/outcomes.h"
#include "pipeline/pipeline.h"

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
  // Housekeeping, several times a second: deletes segments every cursor has
  // passed, and tells ingest which destinations are past a blocking backlog
  // quota.
  void Tick();

  const Config& config() const { return *config_; }
  // Switches to `next` (already validated): destinations that did not change
  // keep running, changed ones restart from their cursor, removed ones stop,
  // new ones start. Settings that need a restart (data_dir, listen, wal,
  // limits, dedupe, admin) keep their old values, with a warning. Call from
  // the thread that called Serve()'s caller (the signal thread).
  void Reload(Config next);
  // For the admin server: Prometheus text and the /api/status JSON.
  std::string MetricsText() const;
  std::string StatusJson() const;
  // For the admin API: "replay" puts dead letters of `destination` (all, or
  // those with `ids`) back into the log for it, then removes them from the
  // dead letters; "drop" only removes them. Returns an HTTP status and sets
  // *body to a JSON answer.
  int Dlq(const std::string& action, const std::string& destination,
          const std::vector<std::string>& ids, std::string* body);

 private:
  std::shared_ptr<const Config> config_;
  [[nodiscard]] Status StartPipeline(const DestinationConfig& d, const Config& c,
                                     std::shared_ptr<pipeline::Pipeline>* out);
  // Snapshot of the running pipelines, for any thread.
  std::vector<std::shared_ptr<pipeline::Pipeline>> Pipelines() const;
  int lock_fd_ = -1;
  std::unique_ptr<log::Log> log_;
  std::unique_ptr<log::CursorStore> cursors_;
  std::unique_ptr<pipeline::DeadLetters> dead_letters_;
  pipeline::PriorityGate priority_gate_;
  pipeline::Outcomes outcomes_;  // outlives the pipelines and ingest
  mutable std::mutex pipelines_mu_;
  std::vector<std::shared_ptr<pipeline::Pipeline>> pipelines_;  // guarded; config order
  std::mutex reload_mu_;
  std::unique_ptr<ingest::Ingest> ingest_;
  std::unique_ptr<admin::AdminServer> admin_;
  struct RatePoint {
    int64_t at_us = 0;
    uint64_t put = 0;
    uint64_t get = 0;
  };
  mutable std::mutex rates_mu_;
  mutable std::map<std::string, RatePoint> rate_prev_;  // guarded by rates_mu_
  std::atomic<bool> started_{false};
  std::atomic<bool> stopping_{false};
  int64_t start_us_ = 0;
};

}  // namespace forkd
