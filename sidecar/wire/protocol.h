// The frame format spoken between the fork-router addon (ZeroMQ DEALER) and
// forkd (ZeroMQ ROUTER). Shared verbatim by addon/ and sidecar/; the grammar is
// written up in docs/protocol.md. Every frame is one ZeroMQ message part that
// starts with a two-byte header: protocol version, frame type.
//
// All fixed-width integers are little-endian. Bodies that are not fixed-width
// are msgpack.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace forkd::wire {

inline constexpr uint8_t kProtocolVersion = 1;
inline constexpr size_t kHeaderSize = 2;

enum class FrameType : uint8_t {
  kHello = 1,      // client -> forkd: msgpack map {client: bin16, protocol: u8, agent: str}
  kWelcome = 2,    // forkd -> client: msgpack map {protocol, server, max_frame, max_event, ...}
  kRoute = 3,      // client -> forkd: a batch of events, see RouteHeader
  kAck = 4,        // forkd -> client: u32 n, n x (u64 first, u64 last): durable in the log
  kNack = 5,       // forkd -> client: u64 first, u64 last, msgpack [code, message]
  kDelivered = 6,  // forkd -> client: like kAck: every target destination is done with the
                   // events; a trailer names those some destination did not store
};

// kRoute body: u64 first_seq, u32 count, then count entries of
//   u8 flags, u32 len, len bytes of msgpack event.
// Entry i carries sequence number first_seq + i.
inline constexpr size_t kRouteHeaderSize = kHeaderSize + 8 + 4;
inline constexpr size_t kRouteEntryHeaderSize = 1 + 4;

// Entry flags.
inline constexpr uint8_t kFlagWantDelivered = 1u << 0;  // client waits for kDelivered

// A msgpack event is the array [destinations, key, options, payload]:
//   destinations  nil (the config's routes decide) or an array of strings
//   key           nil or a string: the caller's idempotencyKey, becomes the event id
//   options       nil or a map of per-call options {timestamp, aggregate, transform}
//   payload       a map: the caller's object
inline constexpr uint32_t kEventArity = 4;

// At most this many destinations are named for one event in a kDelivered
// trailer (forkd routes an event to at most 64).
inline constexpr uint32_t kMaxOutcomesPerEvent = 64;

// Default limits; forkd announces its own in kWelcome.
inline constexpr uint32_t kDefaultMaxFrame = 16u << 20;  // bytes in one ZeroMQ message
inline constexpr uint32_t kDefaultMaxEvent = 1u << 20;   // bytes in one encoded event
inline constexpr uint32_t kMaxDepth = 64;                // nesting of arrays and maps

// Client ids are 16 random bytes, also used as the DEALER routing id.
inline constexpr size_t kClientIdSize = 16;

// Error codes carried by kNack; the same strings as ForkError.code in JS.
inline constexpr const char* kCodeInvalidPayload = "FORK_INVALID_PAYLOAD";
inline constexpr const char* kCodeUnknownDestination = "FORK_UNKNOWN_DESTINATION";
inline constexpr const char* kCodeTooLarge = "FORK_TOO_LARGE";
inline constexpr const char* kCodeRejected = "FORK_REJECTED";
inline constexpr const char* kCodeBackpressure = "FORK_BACKPRESSURE";
inline constexpr const char* kCodeUnavailable = "FORK_UNAVAILABLE";
// forkd does not know the client (no hello, or forgotten while idle): the
// client sends hello and then the nacked events again. Handled by the
// addon; never a ForkError.
inline constexpr const char* kCodeHelloRequired = "FORK_HELLO_REQUIRED";

// Little-endian fixed-width helpers. memcpy compiles to a plain load/store.
inline void PutU32(uint8_t* p, uint32_t v) { std::memcpy(p, &v, 4); }
inline void PutU64(uint8_t* p, uint64_t v) { std::memcpy(p, &v, 8); }
inline uint32_t GetU32(const uint8_t* p) {
  uint32_t v;
  std::memcpy(&v, p, 4);
  return v;
}
inline uint64_t GetU64(const uint8_t* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "wire format assumes little-endian");

}  // namespace forkd::wire
