// A stored event, [dests, key, options, payload], as one destination sees
// it: is it among the event's destinations, with which route templates, and
// where its id, options and payload are. Shared by the pipelines and by the
// tools that recompute what a destination received (`forkd verify`).
#pragma once

#include <cstdint>
#include <string_view>

#include "log/entry.h"
#include "wire/codec.h"
#include "wire/msgpack.h"

namespace forkd::pipeline {

struct StoredEvent {
  bool mine = false;       // the destination is in the event's list
  bool by_routes = false;  // a leading nil: the routes chose the list
  const uint8_t* dests = nullptr;  // the list itself
  wire::Value list;                // its header
  const uint8_t* route_t = nullptr;  // this destination's [name, template...], or null
  uint32_t route_t_count = 0;
  bool has_key = false;    // an idempotencyKey
  std::string_view key;
  const uint8_t* options = nullptr;  // msgpack map or nil
  const uint8_t* payload = nullptr;
  size_t payload_size = 0;
};

// Reads `e` (checked by the log's reader) for destination `name`.
void ReadStoredEvent(const log::Entry& e, std::string_view name, StoredEvent* out);

// The event's id: its idempotencyKey, or "<client hex>-<seq>" written into
// `buf` (at least 64 bytes).
inline std::string_view StoredEventId(const log::Entry& e, const StoredEvent& s, char* buf) {
  if (s.has_key) return s.key;
  return std::string_view(buf, wire::FormatEventIdTo(e.header.client_id, e.header.seq, buf));
}

}  // namespace forkd::pipeline
