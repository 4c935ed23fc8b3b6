// Encoding and decoding of the frames declared in protocol.h. Used by both
// ends: the addon's I/O thread and forkd's ingest thread. Decoders take
// untrusted bytes and never read past them; encoders append to a Buffer.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "wire/msgpack.h"
#include "wire/protocol.h"

namespace forkd::wire {

struct Hello {
  uint8_t client_id[kClientIdSize] = {};
  uint32_t protocol = kProtocolVersion;
  std::string agent;
};

struct Welcome {
  uint32_t protocol = kProtocolVersion;
  std::string server;  // e.g. "forkd/0.1.0"
  uint32_t max_frame = kDefaultMaxFrame;
  uint32_t max_event = kDefaultMaxEvent;
  std::vector<std::string> destinations;  // configured destination names
};

// An inclusive range of sequence numbers.
struct SeqRange {
  uint64_t first = 0;
  uint64_t last = 0;
};

// Destinations chosen by the config's routes for an event sent without any.
struct Routed {
  uint64_t seq = 0;
  std::vector<std::string> destinations;
};

struct Ack {
  std::vector<SeqRange> ranges;
  std::vector<Routed> routed;  // optional trailer
};

struct Nack {
  SeqRange range;
  std::string code;     // one of the kCode* strings
  std::string message;  // says what was wrong and where
};

// One event inside a kRoute frame; `event` points into the frame.
struct RouteEntry {
  uint64_t seq = 0;
  uint8_t flags = 0;
  const uint8_t* event = nullptr;
  uint32_t size = 0;
};

// Returns the frame type, or false if the header is missing or of another
// protocol version.
[[nodiscard]] bool PeekHeader(const uint8_t* data, size_t size, FrameType* type,
                              std::string* error);

void EncodeHello(const Hello& h, Buffer* out);
void EncodeWelcome(const Welcome& w, Buffer* out);
void EncodeAck(const Ack& a, Buffer* out);
void EncodeNack(const Nack& n, Buffer* out);
void EncodeDelivered(const std::vector<SeqRange>& ranges, Buffer* out);

// Decoders return false and fill *error ("hello: client id must be 16 bytes").
[[nodiscard]] bool DecodeHello(const uint8_t* data, size_t size, Hello* out, std::string* error);
[[nodiscard]] bool DecodeWelcome(const uint8_t* data, size_t size, Welcome* out,
                                 std::string* error);
[[nodiscard]] bool DecodeAck(const uint8_t* data, size_t size, Ack* out, std::string* error);
[[nodiscard]] bool DecodeNack(const uint8_t* data, size_t size, Nack* out, std::string* error);
[[nodiscard]] bool DecodeDelivered(const uint8_t* data, size_t size, std::vector<SeqRange>* out,
                                   std::string* error);

// Writes a kRoute frame header for `count` events starting at `first_seq`
// into the first kRouteHeaderSize bytes of `frame`.
void WriteRouteHeader(uint8_t* frame, uint64_t first_seq, uint32_t count);
// Appends one entry (flags, length, event bytes) to a kRoute frame.
void AppendRouteEntry(Buffer* frame, uint8_t flags, const uint8_t* event, uint32_t size);

// Splits a kRoute frame into entries. Checks the framing only (counts and
// lengths), not the events themselves: see CheckEvent.
[[nodiscard]] bool DecodeRoute(const uint8_t* data, size_t size, std::vector<RouteEntry>* out,
                               std::string* error);

// The parts of a validated event.
struct EventView {
  const uint8_t* dests = nullptr;  // msgpack: nil or array of str
  size_t dests_size = 0;
  uint32_t dest_count = 0;   // 0 when nil
  bool has_dests = false;
  std::string_view key;      // empty when nil
  bool has_key = false;
  const uint8_t* options = nullptr;  // msgpack: nil or map
  size_t options_size = 0;
  const uint8_t* payload = nullptr;  // msgpack map
  size_t payload_size = 0;
};

// Validates one untrusted event ([dests, key, options, payload], see
// protocol.h) against `limits` and splits it into its parts. On failure
// *error says what was wrong ("payload: nesting deeper than the limit at byte 812").
[[nodiscard]] bool CheckEvent(const uint8_t* data, size_t size, const Limits& limits,
                              EventView* out, std::string* error);

// Validates an event as stored in the log (docs/log_format.md): well-formed
// msgpack, exactly one value, the array [destinations, key, options, payload]
// where destinations is nil or an array whose entries are a name, nil (the
// routes chose the list) or [name, template...]; key nil or a string; options
// nil or a map; payload a map. Nesting is bounded by kMaxCheckDepth, lengths
// only by `size`: what ingest once accepted under any configured limits
// passes. Readers of the log call this once per entry and may then walk the
// event with a Reader. False with *error ("stored event: key must be nil or a
// string").
[[nodiscard]] bool CheckStoredEvent(const uint8_t* data, size_t size, std::string* error);

// Formats an event id: 32 hex digits of client id, '-', decimal sequence.
std::string FormatEventId(const uint8_t* client_id, uint64_t seq);
inline constexpr size_t kMaxEventIdSize = kClientIdSize * 2 + 1 + 20;
// The same into `out` (at least kMaxEventIdSize bytes); returns the length.
size_t FormatEventIdTo(const uint8_t* client_id, uint64_t seq, char* out);

}  // namespace forkd::wire
