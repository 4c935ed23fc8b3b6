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
  bool outcomes = false;  // the client reads a kDelivered frame's outcomes trailer
  // Random per client process, never sent anywhere but in hellos: forkd binds
  // the client id to it, so another peer that learns the id (it is in every
  // event id) cannot say hello as that client.
  bool has_session = false;
  uint8_t session[kClientIdSize] = {};
};

struct Welcome {
  uint32_t protocol = kProtocolVersion;
  std::string server;  // e.g. "forkd/0.1.0"
  uint32_t max_frame = kDefaultMaxFrame;
  uint32_t max_event = kDefaultMaxEvent;
  std::vector<std::string> destinations;  // configured destination names
  bool outcomes = false;  // forkd sends outcomes trailers to clients that asked in kHello
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

// What became of an event at one destination, for a client waiting on
// 'delivered'. The names are those of receipt.outcomes in JS.
enum class OutcomeKind : uint8_t {
  kDelivered,   // committed to the destination's store
  kFiltered,    // dropped by a filter or validate step: not an error
  kDeadLetter,  // refused by a transform or the store, or given up after retries
  kShed,        // skipped past the destination's backlog quota
};
// "delivered", "filtered", "dead_letter", "shed".
const char* OutcomeName(OutcomeKind k);

struct DestinationOutcome {
  std::string destination;
  OutcomeKind kind = OutcomeKind::kDelivered;
  std::string reason;  // why, for dead_letter and shed; may be empty
};

// The destinations that did not plainly store event `seq`; the event's other
// destinations delivered it.
struct EventOutcomes {
  uint64_t seq = 0;
  std::vector<DestinationOutcome> outcomes;
};

struct Delivered {
  std::vector<SeqRange> ranges;
  // Optional trailer, sent only to clients that set Hello::outcomes: in
  // increasing seq order, each seq inside `ranges`.
  std::vector<EventOutcomes> outcomes;
};

// One line that says why an event was not stored at a destination, the same
// on both sides: "destination 'analytics' did not store the event
// (dead_letter): validate: amount: not a number".
std::string DescribeOutcome(const DestinationOutcome& o);

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
void EncodeDelivered(const Delivered& d, Buffer* out);

// Decoders return false and fill *error ("hello: client id must be 16 bytes").
[[nodiscard]] bool DecodeHello(const uint8_t* data, size_t size, Hello* out, std::string* error);
[[nodiscard]] bool DecodeWelcome(const uint8_t* data, size_t size, Welcome* out,
                                 std::string* error);
[[nodiscard]] bool DecodeAck(const uint8_t* data, size_t size, Ack* out, std::string* error);
[[nodiscard]] bool DecodeNack(const uint8_t* data, size_t size, Nack* out, std::string* error);
[[nodiscard]] bool DecodeDelivered(const uint8_t* data, size_t size, Delivered* out,
                                   std::string* error);

// Writes a kRoute frame header for `count` events starting at `first_seq`
// into the first kRouteHeaderSize bytes of `frame`.
void WriteRouteHeader(uint8_t* frame, uint64_t first_seq, uint32_t count);
// Appends one entry (flags, length, event bytes) to a kRoute frame.
void AppendRouteEntry(Buffer* frame, uint8_t flags, const uint8_t* event, uint32_t size);

// Reads a kRoute frame entry by entry, without allocating: what reading a
// frame costs does not grow with the number of entries it claims. Open checks
// the framing of the whole frame first (counts and lengths, no bytes after the
// last entry), so a frame is either refused whole or read whole; it does not
// check the events themselves: see CheckEvent. The frame's bytes must outlive
// the reader.
class RouteReader {
 public:
  // False, with *error saying what is wrong ("route: entry 3 claims 900
  // bytes, 12 remain"), unless the frame is well framed.
  [[nodiscard]] bool Open(const uint8_t* data, size_t size, std::string* error);
  uint64_t first_seq() const { return first_; }
  uint32_t count() const { return count_; }
  // The next entry, in order; false past the last. Only after Open succeeded.
  bool Next(RouteEntry* out);

 private:
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t off_ = 0;
  uint64_t first_ = 0;
  uint32_t count_ = 0;
  uint32_t next_ = 0;
};

// Splits a kRoute frame into entries, with RouteReader (the same checks);
// `out` grows with the entries actually there.
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
// The other way: the client id (kClientIdSize bytes) and sequence of an id
// in that form (lowercase hex); false for any other string.
[[nodiscard]] bool ParseEventId(std::string_view id, uint8_t* client_id, uint64_t* seq);

}  // namespace forkd::wire
