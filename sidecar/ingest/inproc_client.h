// A wire-protocol client inside forkd: one in-process ZeroMQ DEALER with a
// client id of its own, connected to the inproc endpoint ingest's ROUTER
// binds (Ingest::kInprocEndpoint). HTTP ingest and the kafka source send
// their events through it, so limits, routes, idempotency keys,
// backpressure, group commit and acks are exactly the addon's.
//
// Threads: one client is used by one thread at a time.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ingest/http/json_events.h"
#include "wire/codec.h"
#include "wire/protocol.h"

namespace forkd::ingest {

using http::AckLevel;
using http::Event;
using http::Events;

struct InprocClient {
  void* socket = nullptr;
  uint8_t id[wire::kClientIdSize] = {};
  uint8_t session[wire::kClientIdSize] = {};
  uint64_t next_seq = 1;
  bool ready = false;  // welcomed, and not told to say hello again
  wire::Buffer frame;
  InprocClient() = default;
  InprocClient(const InprocClient&) = delete;
  InprocClient& operator=(const InprocClient&) = delete;
  ~InprocClient();
};

// A new client (random id and session) connected to `endpoint` in `ctx`;
// nullptr with *error.
std::unique_ptr<InprocClient> OpenInprocClient(void* ctx, const std::string& endpoint,
                                               std::string* error);

// Says hello (as `agent`, asking for outcomes) and waits for the welcome.
// False with *error when ingest refuses it or does not answer in time.
bool Hello(InprocClient* c, const char* agent, int64_t deadline_ms, std::string* error);

// One call's events and what became of each.
struct InprocCall {
  Events events;
  uint64_t first_seq = 0;
  struct State {
    enum { kPending, kAccepted, kDone, kFailed } state = kPending;
    AckLevel reached = AckLevel::kNone;
    std::string code, message;
    bool has_routed = false;
    std::vector<std::string> routed;
    std::vector<wire::DestinationOutcome> outcomes;  // not plainly delivered
    bool outcomes_known = false;
    int64_t deadline_ms = 0;
  };
  std::vector<State> states;
  size_t open = 0;  // events not yet settled
};

struct RouteSettings {
  const char* agent = "forkd";  // for a hello again, when ingest forgot the client
  size_t max_frame = 16u << 20;  // ingest's limits.max_frame
  int64_t timeout_ms = 10000;    // for events without their own
};

// Sends the call's events, in frames of at most max_frame bytes, and waits
// until each is settled (acked at its level, or failed with a FORK_* code)
// or past its deadline. Once `stopping` is set it waits at most 2 s more.
void Route(InprocClient* c, InprocCall* call, const RouteSettings& rs,
           const std::atomic<bool>& stopping);

}  // namespace forkd::ingest
