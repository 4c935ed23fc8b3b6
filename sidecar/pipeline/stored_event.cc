#include "pipeline/stored_event.h"

namespace forkd::pipeline {

void ReadStoredEvent(const log::Entry& e, std::string_view name, StoredEvent* out) {
  *out = StoredEvent{};
  wire::Reader rd(e.event, e.event_size);
  rd.Next();  // [dests, key, options, payload]
  out->dests = rd.pos();
  out->list = rd.Next();
  if (out->list.kind == wire::Kind::kArray) {
    for (uint32_t i = 0; i < out->list.len; ++i) {
      const uint8_t* at = rd.pos();
      const wire::Value s = rd.Next();
      if (s.kind == wire::Kind::kNil) {
        out->by_routes = out->by_routes || i == 0;
      } else if (s.kind == wire::Kind::kArray) {
        // [name, template...]: a route's transforms apply here.
        const wire::Value n = rd.Next();
        const bool match = !out->mine && n.str() == name;
        for (uint32_t k = 1; k < s.len; ++k) rd.Skip();
        if (match) {
          out->mine = true;
          out->route_t = at;
          out->route_t_count = s.len - 1;
        }
      } else if (!out->mine && s.str() == name) {
        out->mine = true;
      }
    }
  }
  const wire::Value k = rd.Next();
  if (k.kind == wire::Kind::kStr) {
    out->has_key = true;
    out->key = k.str();
  }
  out->options = rd.pos();
  rd.Skip();  // options
  out->payload = rd.pos();
  out->payload_size = e.event_size - static_cast<size_t>(rd.pos() - e.event);
}

}  // namespace forkd::pipeline
