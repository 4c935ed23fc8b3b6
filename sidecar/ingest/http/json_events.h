// The body of `POST /v1/events` (HTTP ingest): one event `{ payload,
// destination, options }`, a JSON array of them, or NDJSON (one per line),
// turned into the wire protocol's events ([destinations, key, options,
// payload] in msgpack, protocol.h) exactly as the addon encodes them, so
// ingest applies the same checks, routes, dedupe and acks to both.
//
// The options are checked as the JS layer checks them (js/index.cjs,
// parseOptions) and refused with the same codes and a path to what is wrong
// ("[3].options.ack"). JSON is read strictly (RFC 8259: no comments, no
// trailing commas, no NaN, strings of valid UTF-8; a lone surrogate escape
// becomes U+FFFD, as when a JS string is encoded). Pure functions of their
// input; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wire/msgpack.h"

namespace forkd::ingest::http {

enum class AckLevel : uint8_t { kNone, kAccepted, kDelivered };
const char* AckLevelName(AckLevel a);

enum class BodyFormat : uint8_t {
  kJson,    // one event object or an array of them
  kNdjson,  // one event object per line; blank lines are skipped
};

struct EventLimits {
  size_t max_event = 1u << 20;  // bytes of one encoded event (limits.max_event)
  size_t max_events = 10000;    // events in one body
};

// One event of a body.
struct Event {
  size_t offset = 0;  // of the event's bytes in Events::wire
  size_t size = 0;
  std::vector<std::string> destinations;  // as named by the caller; empty: the routes decide
  std::string key;                        // idempotencyKey; empty: none
  AckLevel ack = AckLevel::kAccepted;
  int64_t timeout_ms = 0;  // 0: the server's default
};

struct Events {
  wire::Buffer wire;  // the events' msgpack, back to back
  std::vector<Event> events;
  bool single = false;  // the body was one object, not an array or NDJSON
  void clear() {
    wire.clear();
    events.clear();
    single = false;
  }
};

struct BodyError {
  const char* code = nullptr;  // FORK_INVALID_PAYLOAD or FORK_TOO_LARGE
  std::string message;
  std::string path;  // "[3].options.ack", "payload.items[2]"; "" for the body itself
};

// Parses `body` into *out (cleared first). On failure, nothing of the body
// is to be sent: *error says what and where.
[[nodiscard]] bool ParseEvents(std::string_view body, BodyFormat format, const EventLimits& limits,
                               Events* out, BodyError* error);

// Appends `s` as a JSON string literal (quotes included) to *out.
void AppendJsonString(std::string_view s, std::string* out);

}  // namespace forkd::ingest::http
