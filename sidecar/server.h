// The running forkd: wires the log, the pipelines and ingest together, and
// shuts them down in order (ingest stops taking events, the log commits what
// it has, pipelines drain, cursors persist).
#pragma once

#include <atomic>
#include <memory>
#include <vector>

#include "admin/admin_server.h"
#include "core/config.h"
#include "ingest/ingest.h"
#include "log/cursors.h"
#include "log/log.h"
#include "pipeline/dead_letters.h"
#include "pipeline/pipeline.h"

namespace forkd {

class Server {
 public:
  explicit Server(Config config) : config_(std::move(config)) {}
  ~Server();

  // Opens the data directory (locked against a second forkd), recovers the
  // log, starts the pipelines and binds the socket.
  [[nodiscard]] Status Start();
  // Serves until RequestStop(); then drains and returns.
  void Serve();
  // Thread-safe, async-signal-unsafe: call from the signal thread.
  void RequestStop();
  // Housekeeping every second: deletes segments every cursor has passed.
  void Tick();

  const Config& config() const { return config_; }
  // For the admin server: Prometheus text and the /api/status JSON.
  std::string MetricsText() const;
  std::string StatusJson() const;

 private:
  Config config_;
  int lock_fd_ = -1;
  std::unique_ptr<log::Log> log_;
  std::unique_ptr<log::CursorStore> cursors_;
  std::unique_ptr<pipeline::DeadLetters> dead_letters_;
  std::vector<std::unique_ptr<pipeline::Pipeline>> pipelines_;
  std::unique_ptr<ingest::Ingest> ingest_;
  std::unique_ptr<admin::AdminServer> admin_;
  std::atomic<bool> started_{false};
  int64_t start_us_ = 0;
};

}  // namespace forkd
