// The ZAP handler (ZeroMQ Authentication Protocol, RFC 27) of ingest's
// ROUTER socket. libzmq asks it about every new connection during the
// handshake; it answers on its own thread, so a slow ingest round never
// delays a handshake.
//
// It gives each connection a number (from 1, never reused while forkd runs)
// and, under CURVE, checks the client's public key against curve.clients.
// Every message received on a connection then carries what it answered, read
// with PeerOf():
//   X-Fork-Connection  the connection's number
//   User-Id            the client's CURVE public key in Z85; empty without CURVE
// Ingest binds a client id to the connection and key whose hello it accepted
// (ingest.cc, HandleHello), which is how it tells a client's own reconnect
// from another peer claiming the same id.
//
// Threads: Start() and Stop() from the thread that owns the ZeroMQ context;
// PeerOf() from any thread.
#pragma once

#include <zmq.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/status.h"

namespace forkd::ingest {

// What ZAP said about the connection a message came from.
struct Peer {
  uint64_t connection = 0;  // 0: unknown (no ZAP answer attached)
  std::string_view key;     // Z85 public key under CURVE, else empty; valid with the message
};

// Reads the properties the handler attached to a received message. Does not
// allocate.
Peer PeerOf(zmq_msg_t* msg);

class ZapHandler {
 public:
  // `allowed`: the CURVE public keys (Z85) that may connect; empty: any.
  // `refused` (may be null, outlives this) counts the connections refused.
  ZapHandler(std::vector<std::string> allowed, std::atomic<uint64_t>* refused);
  ~ZapHandler();  // Stop()
  ZapHandler(const ZapHandler&) = delete;
  ZapHandler& operator=(const ZapHandler&) = delete;

  // Binds inproc://zeromq.zap.01 in `ctx` (before any socket of `ctx` binds
  // or connects, so no handshake goes unchecked) and starts the thread.
  [[nodiscard]] Status Start(void* ctx);
  // Stops the thread and closes its socket: before zmq_ctx_term. Idempotent.
  void Stop();

 private:
  void Run();
  // Answers one request (its frames).
  void Answer(const std::vector<std::string>& request);

  std::vector<std::string> allowed_;
  void* socket_ = nullptr;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<uint64_t>* refused_;
  uint64_t next_connection_ = 1;  // the thread's
};

}  // namespace forkd::ingest
