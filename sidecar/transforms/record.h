// The record a transform chain works on. A payload is a msgpack map; the
// chain sees its top-level fields as a small list of (key, value) views into
// the original bytes, so renaming, dropping or adding a field touches only
// that list. Nested values stay msgpack and are read in place; an edit below
// the top level rewrites just the one top-level value it falls in.
//
// Threads: a Doc and its Arena belong to one thread (a pipeline's, or
// ingest's for routing).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "wire/msgpack.h"

namespace forkd::transforms {

// Bytes that live as long as the record being transformed. Pointers stay
// valid until Reset(); Reset keeps the first block, so a steady stream of
// records allocates nothing.
class Arena {
 public:
  Arena() = default;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  uint8_t* Alloc(size_t n);
  std::string_view Copy(std::string_view s);
  const uint8_t* Copy(const uint8_t* p, size_t n) { return Alloc(n) ? CopyTo(p, n) : nullptr; }
  void Reset();

 private:
  const uint8_t* CopyTo(const uint8_t* p, size_t n);
  static constexpr size_t kBlock = 8192;
  std::vector<std::unique_ptr<uint8_t[]>> blocks_;
  uint8_t* last_ = nullptr;  // the most recent allocation, for CopyTo
  size_t used_ = 0;          // bytes used in blocks_.back()
  size_t cap_ = 0;           // size of blocks_.back()
};

// One step of a field path: a map key, or an array index.
struct PathSeg {
  std::string key;
  int64_t index = -1;  // >= 0: an array index
  bool is_index() const { return index >= 0; }
};

// A field path as written in the config: `user.address.city`, `items[0].sku`,
// `["odd key"].x`. The first step is always a key.
struct Path {
  std::vector<PathSeg> segs;
  std::string text;  // as written, for messages
};

// Parses `text` as a path. On failure *error says why and *column (0-based)
// where.
[[nodiscard]] bool ParsePath(std::string_view text, Path* out, std::string* error,
                             size_t* column = nullptr);

// A msgpack value held by reference: its encoded bytes.
struct RawValue {
  const uint8_t* data = nullptr;
  uint32_t size = 0;
  bool found() const { return data != nullptr; }
};

struct Field {
  std::string_view key;
  RawValue value;
};

class Doc {
 public:
  // Takes the fields of a msgpack map that passed validation. Of duplicate
  // keys the last wins, as in a JSON object. A non-map payload becomes one
  // field, "value".
  void Load(const uint8_t* map, size_t size);
  void Clear() {
    fields_.clear();
    arena_.Reset();
  }

  const std::vector<Field>& fields() const { return fields_; }
  std::vector<Field>& fields() { return fields_; }
  const Field* Find(std::string_view key) const;
  Field* Find(std::string_view key);
  // Sets a top-level field (replacing it or appending it) to bytes that must
  // outlive the Doc's use: the arena's, or the original payload's.
  void Set(std::string_view key, RawValue v);
  bool Erase(std::string_view key);

  // The value at `path`, read in place; not found() when any step is missing
  // or of the wrong kind.
  RawValue Lookup(const Path& path) const;

  // Replaces the value at `path`, creating missing maps on the way when
  // `create` is set. False when the path crosses a non-map or a missing
  // array element.
  bool Replace(const Path& path, RawValue v, bool create);
  // Removes the value at `path`; false if it was not there.
  bool Remove(const Path& path);
  // Renames the last step of `path` to `new_key` within the same map.
  bool Rename(const Path& path, std::string_view new_key);

  // Appends the record as one msgpack map.
  void Serialize(wire::Buffer* out) const;

  Arena& arena() { return arena_; }
  wire::Buffer& scratch() { return scratch_; }

 private:
  enum class EditKind { kReplace, kRemove, kRename };
  bool Edit(const Path& path, EditKind kind, RawValue v, std::string_view new_key, bool create);

  std::vector<Field> fields_;
  Arena arena_;
  wire::Buffer scratch_;
};

// Encodes a scalar into the arena as msgpack.
RawValue EncodeString(std::string_view s, Arena* arena);
RawValue EncodeInt(int64_t v, Arena* arena);
RawValue EncodeDouble(double v, Arena* arena);
RawValue EncodeBool(bool v, Arena* arena);
RawValue EncodeNil();
RawValue CopyBuffer(const wire::Buffer& b, Arena* arena);

// Time values in payloads: epoch milliseconds (a number), an ISO-8601 / RFC
// 3339 string, or the msgpack timestamp extension. False if `v` is none.
[[nodiscard]] bool ReadTime(const wire::Value& v, int64_t* epoch_ms);
// Parses "2026-11-21T10:15:00Z", "2026-11-21T10:15:00.123+02:00",
// "2026-11-21 10:15:00" (UTC) or "2026-11-21".
[[nodiscard]] bool ParseIsoTime(std::string_view s, int64_t* epoch_ms);
// "2026-11-21T10:15:00.123Z"
void FormatIsoMillis(int64_t epoch_ms, std::string* out);

// The text form of a scalar for templates, hashing and grouping: strings as
// they are, numbers in shortest decimal form, true/false, "" for nil, and
// containers as JSON.
void AppendText(const uint8_t* value, std::string* out);

}  // namespace forkd::transforms
