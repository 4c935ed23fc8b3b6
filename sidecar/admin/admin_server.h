// The admin HTTP server (cpp-httplib) on `admin: host:port`:
//   GET /healthz      200 while the process serves
//   GET /readyz       200 once the log is recovered and ingest listens
//   GET /metrics      Prometheus text: ingest, log and per-destination series
//   GET /api/status   the same as JSON
//   GET /             a small live dashboard over /api/status
//   POST /api/dlq/replay?destination=D[&id=ID...]   dead letters back into
//                     the log for D (all, or those ids); JSON answer
//   POST /api/dlq/drop?destination=D[&id=ID...]     deletes them
//   POST /api/cursors/drop?destination=D   deletes the cursor of D, a
//                     destination no longer configured, so the log it held
//                     can go (its undelivered events are given up)
// Threads: its own listener thread and pool; it only reads atomics and
// thread-safe accessors of the engine.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"

namespace httplib {
class Server;
}

namespace forkd::admin {

struct Handlers {
  std::function<bool()> ready;
  std::function<std::string()> metrics;  // Prometheus text
  std::function<std::string()> status;   // JSON
  // action "replay" or "drop"; returns the HTTP status, *body the JSON.
  std::function<int(const std::string& action, const std::string& destination,
                    const std::vector<std::string>& ids, std::string* body)>
      dlq;
  // Drops a removed destination's cursor; returns the HTTP status, *body the JSON.
  std::function<int(const std::string& destination, std::string* body)> cursor_drop;
};

class AdminServer {
 public:
  explicit AdminServer(Handlers h);
  ~AdminServer();
  // Binds host:port and starts serving; fails with a message if it cannot.
  [[nodiscard]] Status Start(const std::string& address);
  void Stop();

 private:
  Handlers h_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
};

}  // namespace forkd::admin
