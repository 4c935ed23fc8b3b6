// HTTP ingest: `POST /v1/events` on `http_ingest.listen` (cpp-httplib), for
// callers that cannot load the addon.
//
// There is no second ingest behind it. Each request is parsed into the wire
// protocol's events (json_events.h) and sent as kRoute frames, through an
// in-process ZeroMQ DEALER with a client id of its own, to the ingest ROUTER
// that serves the addon (which also binds Ingest::kInprocEndpoint). So
// limits, routes, idempotency keys, backpressure, group commit and the
// 'delivered' level are the very ones the addon gets; the acks, nacks and
// delivered frames that come back become the HTTP answer:
//
//   200  the receipts ({id, ack, destinations, outcomes?}: one object for
//        a one-event body, an array otherwise), once every event reached
//        its ack level (durable in the log by default)
//   4xx/5xx  {"error": {code, message, path}} with the FORK_* code; for a
//        body of several events, also "results": a receipt or {"error"}
//        per event, in order (the events before a failure may be stored)
//   401 no token, 403 a wrong one, 405 another method, 415 another
//        Content-Type, 413 a body over max_body or an event over
//        limits.max_event, 400 a malformed body or event (with its path),
//        429 FORK_BACKPRESSURE and 503 FORK_UNAVAILABLE with Retry-After,
//        504 FORK_TIMEOUT, 422 FORK_REJECTED ('delivered' calls a
//        destination did not store)
//
// Threads: Start() and Stop() from the server's thread; requests run on the
// listener's pool, each holding one DEALER from a pool for the request.
// Stop() must run before ingest's ZeroMQ context is terminated.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/status.h"
#include "ingest/http/http_ingest_config.h"
#include "ingest/inproc_client.h"

namespace httplib {
class Server;
struct Request;
struct Response;
}  // namespace httplib

namespace forkd::ingest::http {

struct HttpIngestStats {
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> events{0};    // answered with a receipt
  std::atomic<uint64_t> refused{0};   // requests answered 4xx/5xx
};

class HttpIngest {
 public:
  // `zmq_ctx`: ingest's context; `endpoint`: its inproc endpoint; both
  // outlive this object. `max_event`, `max_frame`: ingest's limits.
  HttpIngest(void* zmq_ctx, std::string endpoint, HttpIngestConfig config, size_t max_event,
             size_t max_frame);
  ~HttpIngest();  // Stop()
  HttpIngest(const HttpIngest&) = delete;
  HttpIngest& operator=(const HttpIngest&) = delete;

  // Binds the listen address and starts serving.
  [[nodiscard]] Status Start();
  // Stops taking requests, lets the ones being served finish (they wait
  // for ingest's answers at most until their deadline, or 2 s once
  // stopping), closes every DEALER. Idempotent.
  void Stop();

  const HttpIngestStats& stats() const { return stats_; }

 private:
  void Handle(const httplib::Request& req, httplib::Response& res);
  std::unique_ptr<InprocClient> TakeConn(std::string* error);
  void ReturnConn(std::unique_ptr<InprocClient> c);

  void* ctx_;
  std::string endpoint_;
  HttpIngestConfig config_;
  size_t max_event_;
  size_t max_frame_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::mutex conns_mu_;
  std::vector<std::unique_ptr<InprocClient>> idle_;  // guarded by conns_mu_
  std::atomic<bool> stopping_{false};
  std::mutex stop_mu_;
  bool stopped_ = false;  // guarded by stop_mu_
  HttpIngestStats stats_;
};

}  // namespace forkd::ingest::http
