// Encodes JS values to msgpack straight from the engine's values, with raw
// Node-API calls, into a caller-owned wire Buffer that is reused from call to
// call (no allocation once the buffer has grown to the working size).
//
// The event on the wire is the msgpack array [destinations, key, options,
// payload] of wire/protocol.h. Payload rules, close to JSON.stringify:
//   string -> str (UTF-8), number -> int when integral and within int64, else
//   float64 (-0, NaN and the infinities are floats), boolean, null -> nil,
//   array -> array (undefined elements -> nil), plain object -> map of its own
//   enumerable string keys (undefined properties skipped), Date -> timestamp
//   extension (-1), Buffer / typed array / DataView / ArrayBuffer -> bin of
//   their bytes, BigInt within 64 bits -> int.
// Rejected with FORK_INVALID_PAYLOAD, naming the path of the bad value
// (`payload.items[3].price: functions cannot be encoded`): functions,
// symbols, invalid Dates, BigInts outside 64 bits, cycles, nesting of arrays
// and objects deeper than wire::kMaxDepth, getters that throw. The path is
// only built on the error path; success pays nothing for it.
//
// A payload may also be a Buffer / Uint8Array holding one msgpack map that is
// already encoded: it is validated (wire::CheckValue) and copied as is.
//
// Thread: JS thread only (it reads JS values). Not reentrant.
#pragma once

#include <node_api.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "wire/msgpack.h"
#include "wire/protocol.h"

namespace fork_router {

namespace wire = ::forkd::wire;

// Why an encode failed.
struct EncodeError {
  const char* code = nullptr;  // kInvalidPayload or kTooLarge (errors.h)
  std::string message;         // "payload.items[3].price: functions cannot be encoded"
  std::string path;            // "items[3].price" (relative to `root`), empty at the root
  const char* root = "";       // "payload", "options", "destination" or "key"
  napi_ref cause = nullptr;    // the exception a getter threw, if any; caller deletes
};

class Encoder {
 public:
  // `max_size`: encodes growing past this many bytes stop early with
  // FORK_TOO_LARGE (the caller also checks the final size).
  explicit Encoder(size_t max_size = wire::kDefaultMaxEvent) : max_size_(max_size) {}
  Encoder(const Encoder&) = delete;
  Encoder& operator=(const Encoder&) = delete;

  void set_max_size(size_t n) { max_size_ = n; }

  // Drops the reference the encoder keeps in `env` (to Object.keys). Call it
  // before destroying an encoder whose environment lives on; references left
  // behind are freed with the environment.
  void Release(napi_env env);

  // After a successful EncodeEvent: the event's destinations and key are the
  // bytes [1, meta_end()) of the output (the array header is byte 0).
  size_t meta_end() const { return meta_end_; }

  // Encodes the event [dests, key, options, payload] into *out, replacing its
  // contents. `dests`: a string, an array of strings, or undefined/null (nil).
  // `key`: a string or undefined/null. `options`: an object or
  // undefined/null. The JS layer has validated the shapes of dests, key and
  // options; the payload is checked here. Returns false and fills *err on
  // failure (then *out holds garbage).
  [[nodiscard]] bool EncodeEvent(napi_env env, napi_value payload, napi_value dests,
                                 napi_value key, napi_value options, wire::Buffer* out,
                                 EncodeError* err);

 private:
  struct PathSegment {
    bool is_index;
    uint32_t index;
    std::string key;
  };
  enum class Failure : uint8_t { kNone, kInvalid, kTooLarge, kCycle };

  bool Payload(napi_value v);
  bool Value(napi_value v, napi_valuetype t, uint32_t depth);
  bool Object(napi_value v, uint32_t depth);
  bool PlainObject(napi_value v, uint32_t depth);
  bool Array(napi_value v, uint32_t depth);
  bool Str(napi_value v);
  bool StrSlow(napi_value v);
  void Number(double d);
  bool BigInt(napi_value v);
  bool Date(napi_value v);
  bool Bytes(const void* data, size_t n, bool raw = false);
  bool TooDeep(napi_value v, uint32_t depth);

  // Error path only.
  bool Fail(std::string reason);
  bool FailWithException(const char* reason);
  void PushKeySegment(napi_value key);
  void PushIndexSegment(uint32_t index);
  std::string FormatPath(size_t count) const;  // the outermost `count` segments
  void Finish(const char* root, EncodeError* err);

  napi_env env_ = nullptr;
  wire::Buffer* out_ = nullptr;
  napi_env keys_env_ = nullptr;       // the environment object_keys_ref_ belongs to
  napi_ref object_keys_ref_ = nullptr;
  napi_value object_keys_ = nullptr;  // valid during one EncodeEvent
  napi_value undefined_ = nullptr;
  size_t max_size_;
  size_t meta_end_ = 0;
  // ancestors_[d] is the array or object at nesting depth d (0 = the root):
  // only read when nesting passes the limit, to tell a cycle from deep data.
  napi_value ancestors_[wire::kMaxDepth];

  // Error state, filled while unwinding.
  Failure failure_ = Failure::kNone;
  std::string reason_;
  std::vector<PathSegment> segments_;  // innermost first
  uint32_t cycle_at_ = 0;              // depth of the repeated object
  uint32_t cycle_target_ = 0;          // depth of its first occurrence
  napi_ref cause_ = nullptr;
};

}  // namespace fork_router
