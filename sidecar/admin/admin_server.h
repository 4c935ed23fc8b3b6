// The admin HTTP server (cpp-httplib) on `admin: host:port` (or
// `admin: {listen, token}`, admin_config.h):
//   GET /healthz      200 while the process serves
//   GET /readyz       200 once the log is recovered and ingest listens
//   GET /metrics      Prometheus text: ingest, log and per-destination series
//   GET /api/status   the same as JSON, with each destination's condition
//                     (running, retrying, breaker_open, failed) and the
//                     alerts firing
//   GET /api/events/<id>   one event (a receipt id or an idempotency key,
//                     URL-encoded): its log position and, per destination,
//                     delivered / pending / dead_lettered / filtered, or
//                     expired past retention; 404 unknown, 400 malformed
//   GET /api/history[?since=UNIX_S]   the last hour per destination, one
//                     sample a second (history.h); only the samples newer
//                     than `since`. A bad since, another parameter or a query
//                     over 256 bytes: 400 with a JSON error
//   GET /             the live dashboard (dashboard.html, built into forkd:
//                     it asks nothing of any other origin): per destination
//                     its condition and charts of the last hour from
//                     /api/history, the alerts firing and the last verify
//                     from /api/status, and an event lookup through
//                     /api/events/<id>
//   GET /streams/D    a `stream` destination's records as Server-Sent Events
//                     (public, or with its own token, or under the read rules)
//   POST /api/dlq/replay?destination=D[&id=ID...]   dead letters back into
//                     the log for D (all, or those ids); JSON answer
//   POST /api/dlq/drop?destination=D[&id=ID...]     deletes them
//   POST /api/cursors/drop?destination=D   deletes the cursor of D, a
//                     destination no longer configured, so the log it held
//                     can go (its undelivered events are given up)
//   POST /api/replay?destination=D&(since=DURATION|from_id=ID)   moves D's
//                     cursor back so the retained events from there are
//                     delivered again
// A request to any of these endpoints passes access.h's checks first: the
// Host rule for all of them, and Origin and the token for the POSTs (other
// paths and methods are answered 404 or 405 and touch nothing). Refusals are JSON
// {"error": ...} with 401 or 403, logged (at most one line a second).
// Threads: its own listener thread and pool; it only reads atomics and
// thread-safe accessors of the engine.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "admin/access.h"
#include "admin/admin_config.h"
#include "core/status.h"

namespace httplib {
class Server;
struct Request;
struct Response;
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
  // Rewinds a destination (since: a duration, or from_id); returns the HTTP
  // status, *body the JSON.
  std::function<int(const std::string& destination, const std::string& since,
                    const std::string& from_id, std::string* body)>
      replay;
  // The status of one event (a receipt id or an idempotency key); returns
  // the HTTP status, *body the JSON.
  std::function<int(const std::string& id, std::string* body)> event;
  // GET /streams/<name>: who may subscribe to a stream destination, and the
  // subscription itself (Server-Sent Events, server_streams.cc).
  struct StreamPolicy {
    bool found = false;  // a configured destination of type stream
    bool is_public = false;
    std::string token;   // empty: the admin server's read rules apply
  };
  std::function<StreamPolicy(const std::string& name)> stream_policy;
  std::function<void(const std::string& name, const httplib::Request& req, httplib::Response& res)>
      stream;
  // Worker threads for the stream subscribers (each holds one while it is
  // connected), on top of the admin server's own.
  size_t stream_threads = 0;
  // The history JSON of the samples newer than `since` (history.h).
  std::function<std::string(int64_t since)> history;
};

class AdminServer {
 public:
  explicit AdminServer(Handlers h);
  ~AdminServer();
  // Binds config.address and starts serving; fails with a message if it
  // cannot. `config` is validated (LoadConfig).
  [[nodiscard]] Status Start(const AdminConfig& config);
  void Stop();

 private:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;
  // True when `v` lets the request through; else answers it with the refusal.
  bool Allowed(const Verdict& v, const httplib::Request& req, httplib::Response& res);
  void HistoryRequest(const httplib::Request& req, httplib::Response& res);

  Handlers h_;
  std::unique_ptr<Access> access_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::atomic<uint64_t> refused_{0};         // requests refused by access_
  std::atomic<uint64_t> refused_logged_{0};  // refused_ when last logged
  std::atomic<int64_t> last_refusal_log_ms_{-1000000};
};

}  // namespace forkd::admin
