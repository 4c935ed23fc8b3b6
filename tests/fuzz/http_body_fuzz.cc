// The body of HTTP ingest's POST /v1/events on bytes from anywhere, as forkd
// meets them: the first byte picks JSON or NDJSON, the rest is the body.
// ParseEvents either refuses with a code and a message, or gives events that
// ingest's own check (CheckEvent, the same limits) accepts and that end
// exactly where the parser said.
#include <string>
#include <string_view>

#include "fuzz_util.h"
#include "ingest/http/json_events.h"
#include "wire/codec.h"

using namespace forkd;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const auto format =
      (data[0] & 1) ? ingest::http::BodyFormat::kNdjson : ingest::http::BodyFormat::kJson;
  const std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  ingest::http::EventLimits limits;
  limits.max_event = 1 << 16;
  limits.max_events = 1000;
  ingest::http::Events out;
  ingest::http::BodyError error;
  if (!ingest::http::ParseEvents(body, format, limits, &out, &error)) {
    fork_fuzz::Require(error.code != nullptr && !error.message.empty(),
                       "a refusal has a code and a message");
    return 0;
  }
  fork_fuzz::Require(!out.events.empty(), "an accepted body has events");
  wire::Limits wl;
  wl.max_string = static_cast<uint32_t>(limits.max_event);
  for (const auto& ev : out.events) {
    fork_fuzz::Require(ev.offset + ev.size <= out.wire.size(), "an event lies in the buffer");
    fork_fuzz::Require(ev.size <= limits.max_event, "an event is within max_event");
    wire::EventView v;
    std::string why;
    fork_fuzz::Require(wire::CheckEvent(out.wire.data() + ev.offset, ev.size, wl, &v, &why),
                       "ingest accepts every event the body parser makes");
    fork_fuzz::Require(v.dest_count == ev.destinations.size(), "destinations agree");
    fork_fuzz::Require(v.key == ev.key, "keys agree");
  }
  return 0;
}
