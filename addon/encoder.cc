#include "encoder.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <string_view>

#include "errors.h"

namespace fork_router {
namespace {

// Free bytes guaranteed before a string is written in place: short strings
// then take one engine call (no separate length query).
constexpr size_t kMinRoom = 64;
// Containers larger than this open a handle scope per chunk of entries, so a
// million-element array does not pin millions of handles at once.
constexpr uint32_t kScopeChunk = 64;

// Opens and closes a handle scope every kScopeChunk entries of a large container.
class ChunkScope {
 public:
  ChunkScope(napi_env env, uint32_t n) : env_(env), active_(n > kScopeChunk) {}
  ~ChunkScope() {
    if (scope_ != nullptr) napi_close_handle_scope(env_, scope_);
  }
  ChunkScope(const ChunkScope&) = delete;
  ChunkScope& operator=(const ChunkScope&) = delete;
  void Step(uint32_t i) {
    if (!active_ || i % kScopeChunk != 0) return;
    if (scope_ != nullptr) napi_close_handle_scope(env_, scope_);
    napi_open_handle_scope(env_, &scope_);
  }

 private:
  napi_env env_;
  bool active_;
  napi_handle_scope scope_ = nullptr;
};

inline size_t ContainerHeaderSize(uint32_t n) { return n < 16 ? 1 : n <= UINT16_MAX ? 3 : 5; }

size_t TypedArrayElementSize(napi_typedarray_type t) {
  switch (t) {
    case napi_int8_array:
    case napi_uint8_array:
    case napi_uint8_clamped_array:
      return 1;
    case napi_int16_array:
    case napi_uint16_array:
      return 2;
    case napi_int32_array:
    case napi_uint32_array:
    case napi_float32_array:
      return 4;
    default:  // float64, bigint64, biguint64
      return 8;
  }
}

bool IsIdentifier(std::string_view s) {
  if (s.empty()) return false;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == '$';
    if (!alpha && !(i > 0 && c >= '0' && c <= '9')) return false;
  }
  return true;
}

void AppendQuoted(std::string* out, std::string_view s) {
  out->push_back('"');
  for (char c : s) {
    if (c == '"' || c == '\\') out->push_back('\\');
    out->push_back(c);
  }
  out->push_back('"');
}

std::string ToStdString(napi_env env, napi_value v) {
  size_t n = 0;
  if (napi_get_value_string_utf8(env, v, nullptr, 0, &n) != napi_ok) return {};
  std::string s(n, '\0');
  napi_get_value_string_utf8(env, v, s.data(), n + 1, &n);
  s.resize(n);
  return s;
}

}  // namespace

bool Encoder::EncodeEvent(napi_env env, napi_value payload, napi_value dests, napi_value key,
                          napi_value options, wire::Buffer* out, EncodeError* err) {
  env_ = env;
  out_ = out;
  out->clear();
  failure_ = Failure::kNone;
  if (keys_env_ != env) {
    // First use in this environment: find Object.keys once.
    napi_value global, object, fn;
    napi_get_global(env, &global);
    napi_get_named_property(env, global, "Object", &object);
    napi_get_named_property(env, object, "keys", &fn);
    napi_create_reference(env, fn, 1, &object_keys_ref_);
    keys_env_ = env;
  }
  napi_get_reference_value(env, object_keys_ref_, &object_keys_);
  napi_get_undefined(env, &undefined_);
  out->Push(0x90 | wire::kEventArity);

  napi_valuetype t;
  napi_typeof(env, dests, &t);
  if (t == napi_string) {
    out->Push(0x91);
    if (!Str(dests)) return Finish("destination", err), false;
  } else if (t == napi_object) {
    uint32_t n = 0;
    napi_get_array_length(env, dests, &n);
    wire::Writer(out).ArrayHeader(n);
    for (uint32_t i = 0; i < n; ++i) {
      napi_value d;
      napi_get_element(env, dests, i, &d);
      if (!Str(d)) {
        PushIndexSegment(i);
        return Finish("destination", err), false;
      }
    }
  } else {
    out->Push(0xc0);
  }

  napi_typeof(env, key, &t);
  if (t == napi_string) {
    if (!Str(key)) return Finish("key", err), false;
  } else {
    out->Push(0xc0);
  }
  meta_end_ = out->size();

  napi_typeof(env, options, &t);
  if (t == napi_object) {
    if (!Object(options, 0)) return Finish("options", err), false;
  } else {
    out->Push(0xc0);
  }

  if (!Payload(payload)) return Finish("payload", err), false;
  if (out->size() > max_size_) {
    failure_ = Failure::kTooLarge;
    return Finish("payload", err), false;
  }
  return true;
}

void Encoder::Release(napi_env env) {
  if (keys_env_ == env && object_keys_ref_ != nullptr) napi_delete_reference(env, object_keys_ref_);
  object_keys_ref_ = nullptr;
  keys_env_ = nullptr;
}

bool Encoder::Payload(napi_value v) {
  napi_valuetype t;
  napi_typeof(env_, v, &t);
  if (t != napi_object) return Fail("must be a plain object");
  bool is = false;
  napi_is_typedarray(env_, v, &is);
  if (is) {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_get_typedarray_info(env_, v, &type, &length, &data, nullptr, nullptr);
    if (type != napi_uint8_array) {
      return Fail("must be a plain object, or a Buffer / Uint8Array of msgpack");
    }
    const auto* bytes = static_cast<const uint8_t*>(data);
    if (length == 0 || bytes == nullptr) return Fail("pre-encoded msgpack is empty");
    size_t used = 0;
    wire::Limits limits;
    limits.max_depth = wire::kMaxDepth;
    limits.max_string = static_cast<uint32_t>(std::min<size_t>(max_size_, UINT32_MAX));
    wire::CheckResult r = wire::CheckValue(bytes, length, limits, &used);
    if (!r) {
      return Fail("pre-encoded msgpack is not valid: " + std::string(r.reason) + " at byte " +
                  std::to_string(r.offset));
    }
    if (used != length) {
      return Fail("pre-encoded msgpack has " + std::to_string(length - used) +
                  " trailing bytes after its first value");
    }
    const uint8_t b = bytes[0];
    if ((b & 0xf0) != 0x80 && b != 0xde && b != 0xdf) {
      return Fail("pre-encoded msgpack must be a map (an object)");
    }
    return Bytes(bytes, length, /*raw=*/true);
  }
  napi_is_array(env_, v, &is);
  if (is) return Fail("must be a plain object, not an array");
  napi_is_date(env_, v, &is);
  if (is) return Fail("must be a plain object, not a Date");
  napi_is_arraybuffer(env_, v, &is);
  if (is) return Fail("must be a plain object, not an ArrayBuffer");
  return PlainObject(v, 0);
}

bool Encoder::Value(napi_value v, napi_valuetype t, uint32_t depth) {
  switch (t) {
    case napi_string:
      return Str(v);
    case napi_number: {
      double d;
      napi_get_value_double(env_, v, &d);
      Number(d);
      return true;
    }
    case napi_boolean: {
      bool b;
      napi_get_value_bool(env_, v, &b);
      out_->Push(b ? 0xc3 : 0xc2);
      return true;
    }
    case napi_null:
    case napi_undefined:
      out_->Push(0xc0);
      return true;
    case napi_object:
      return Object(v, depth);
    case napi_bigint:
      return BigInt(v);
    case napi_function:
      return Fail("functions cannot be encoded");
    case napi_symbol:
      return Fail("symbols cannot be encoded");
    default:
      return Fail("external values cannot be encoded");
  }
}

bool Encoder::Object(napi_value v, uint32_t depth) {
  // Arrays and plain objects first: they are what payloads are made of.
  bool is = false;
  napi_is_array(env_, v, &is);
  if (is) return Array(v, depth);
  napi_is_date(env_, v, &is);
  if (is) return Date(v);
  napi_is_typedarray(env_, v, &is);
  if (is) {
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    napi_get_typedarray_info(env_, v, &type, &length, &data, nullptr, nullptr);
    return Bytes(data, length * TypedArrayElementSize(type));
  }
  napi_is_arraybuffer(env_, v, &is);
  if (is) {
    void* data = nullptr;
    size_t length = 0;
    napi_get_arraybuffer_info(env_, v, &data, &length);
    return Bytes(data, length);
  }
  napi_is_dataview(env_, v, &is);
  if (is) {
    size_t length = 0;
    void* data = nullptr;
    napi_get_dataview_info(env_, v, &length, &data, nullptr, nullptr);
    return Bytes(data, length);
  }
  return PlainObject(v, depth);
}

bool Encoder::PlainObject(napi_value v, uint32_t depth) {
  if (depth >= wire::kMaxDepth) return TooDeep(v, depth);
  ancestors_[depth] = v;
  // Object.keys takes V8's enum-cache fast path; napi_get_all_property_names
  // always builds a deduplicating hash set, which costs several times more.
  napi_value keys;
  if (napi_call_function(env_, undefined_, object_keys_, 1, &v, &keys) != napi_ok) {
    return FailWithException("listing its keys threw");
  }
  uint32_t n = 0;
  napi_get_array_length(env_, keys, &n);
  const size_t header_at = out_->size();
  wire::Writer(out_).MapHeader(n);
  uint32_t written = 0;
  ChunkScope scope(env_, n);
  for (uint32_t i = 0; i < n; ++i) {
    scope.Step(i);
    napi_value k, val;
    napi_get_element(env_, keys, i, &k);
    if (napi_get_property(env_, v, k, &val) != napi_ok) {
      FailWithException("reading it threw");
      PushKeySegment(k);
      return false;
    }
    napi_valuetype t;
    napi_typeof(env_, val, &t);
    if (t == napi_undefined) continue;  // like JSON.stringify
    if (!Str(k) || !Value(val, t, depth + 1)) {
      PushKeySegment(k);
      return false;
    }
    ++written;
  }
  if (written != n) {
    // Undefined properties were skipped: rewrite the header with the real
    // count, moving the entries if the header got shorter.
    const size_t old_size = ContainerHeaderSize(n);
    const size_t new_size = ContainerHeaderSize(written);
    uint8_t* base = out_->data() + header_at;
    if (new_size != old_size) {
      const size_t body = out_->size() - header_at - old_size;
      std::memmove(base + new_size, base + old_size, body);
      out_->Resize(out_->size() - (old_size - new_size));
    }
    if (new_size == 1) {
      base[0] = static_cast<uint8_t>(0x80 | written);
    } else if (new_size == 3) {
      base[0] = 0xde;
      wire::Writer::Be16(base + 1, static_cast<uint16_t>(written));
    } else {
      base[0] = 0xdf;
      wire::Writer::Be32(base + 1, written);
    }
  }
  return true;
}

bool Encoder::Array(napi_value v, uint32_t depth) {
  if (depth >= wire::kMaxDepth) return TooDeep(v, depth);
  ancestors_[depth] = v;
  uint32_t n = 0;
  napi_get_array_length(env_, v, &n);
  wire::Writer(out_).ArrayHeader(n);
  ChunkScope scope(env_, n);
  for (uint32_t i = 0; i < n; ++i) {
    scope.Step(i);
    napi_value e;
    if (napi_get_element(env_, v, i, &e) != napi_ok) {
      FailWithException("reading it threw");
      PushIndexSegment(i);
      return false;
    }
    napi_valuetype t;
    napi_typeof(env_, e, &t);
    if (!Value(e, t, depth + 1)) {  // undefined (and holes) become nil, like JSON
      PushIndexSegment(i);
      return false;
    }
  }
  return true;
}

bool Encoder::Str(napi_value v) {
  wire::Buffer* b = out_;
  if (b->capacity() - b->size() < kMinRoom) b->Reserve(b->size() + kMinRoom);
  const size_t room = b->capacity() - b->size();
  uint8_t* p = b->data() + b->size();
  // Write the bytes right after a one-byte (fixstr) header; the engine writes
  // at most bufsize - 1 bytes and a NUL.
  const size_t bufsize = std::min<size_t>(room - 1, INT_MAX);
  size_t n = 0;
  if (napi_get_value_string_utf8(env_, v, reinterpret_cast<char*>(p + 1), bufsize, &n) !=
      napi_ok) {
    return Fail("must be a string");
  }
  // A multi-byte character that does not fit is left out whole, so fewer than
  // four spare bytes means the string may have been cut: measure and redo.
  if (n + 4 >= bufsize - 1) return StrSlow(v);
  if (n < 32) {
    p[0] = static_cast<uint8_t>(0xa0 | n);
    b->Commit(1 + n);
  } else if (n <= UINT8_MAX) {
    std::memmove(p + 2, p + 1, n);
    p[0] = 0xd9;
    p[1] = static_cast<uint8_t>(n);
    b->Commit(2 + n);
  } else if (n <= UINT16_MAX) {
    std::memmove(p + 3, p + 1, n);
    p[0] = 0xda;
    wire::Writer::Be16(p + 1, static_cast<uint16_t>(n));
    b->Commit(3 + n);
  } else {
    std::memmove(p + 5, p + 1, n);
    p[0] = 0xdb;
    wire::Writer::Be32(p + 1, static_cast<uint32_t>(n));
    b->Commit(5 + n);
  }
  if (b->size() > max_size_) {
    failure_ = Failure::kTooLarge;
    return false;
  }
  return true;
}

bool Encoder::StrSlow(napi_value v) {
  size_t len = 0;
  napi_get_value_string_utf8(env_, v, nullptr, 0, &len);
  if (out_->size() + len > max_size_ || len > UINT32_MAX || len >= INT_MAX) {
    failure_ = Failure::kTooLarge;
    return false;
  }
  wire::Writer(out_).StrHeader(static_cast<uint32_t>(len));
  char* p = reinterpret_cast<char*>(out_->Grow(len + 1));
  size_t n = 0;
  napi_get_value_string_utf8(env_, v, p, len + 1, &n);
  out_->Commit(n);
  return true;
}

void Encoder::Number(double d) {
  // Integral values within int64 go out as integers (the smallest encoding);
  // -0 stays a float so it survives the round trip.
  if (d >= -9223372036854775808.0 && d < 9223372036854775808.0) {
    const auto i = static_cast<int64_t>(d);
    if (static_cast<double>(i) == d && (i != 0 || !std::signbit(d))) {
      wire::Writer(out_).Int(i);
      return;
    }
  }
  wire::Writer(out_).Double(d);
}

bool Encoder::BigInt(napi_value v) {
  bool lossless = false;
  int64_t i = 0;
  napi_get_value_bigint_int64(env_, v, &i, &lossless);
  if (lossless) {
    wire::Writer(out_).Int(i);
    return true;
  }
  uint64_t u = 0;
  napi_get_value_bigint_uint64(env_, v, &u, &lossless);
  if (lossless) {
    wire::Writer(out_).Uint(u);
    return true;
  }
  return Fail("BigInt outside the 64-bit range cannot be encoded");
}

bool Encoder::Date(napi_value v) {
  double ms = 0;
  napi_get_date_value(env_, v, &ms);
  if (std::isnan(ms)) return Fail("invalid Date cannot be encoded");
  const double secs = std::floor(ms / 1000.0);
  auto nanos = static_cast<int64_t>(std::llround((ms - secs * 1000.0) * 1e6));
  auto seconds = static_cast<int64_t>(secs);
  if (nanos >= 1000000000) {
    nanos -= 1000000000;
    seconds += 1;
  }
  wire::Writer(out_).Timestamp(seconds, static_cast<uint32_t>(nanos));
  return true;
}

bool Encoder::Bytes(const void* data, size_t n, bool raw) {
  if (out_->size() + n + 5 > max_size_ || n > UINT32_MAX) {
    failure_ = Failure::kTooLarge;
    return false;
  }
  wire::Writer w(out_);
  if (!raw) w.BinHeader(static_cast<uint32_t>(n));
  if (n > 0) w.Raw(data, n);
  return true;
}

bool Encoder::TooDeep(napi_value v, uint32_t depth) {
  // Deep data is rare and cycles rarer: only now compare against the
  // ancestors. nodes[0..depth] is the chain root .. v.
  napi_value nodes[wire::kMaxDepth + 1];
  std::copy(ancestors_, ancestors_ + depth, nodes);
  nodes[depth] = v;
  bool cyclic = false;
  for (uint32_t d = 0; d < depth && !cyclic; ++d) {
    napi_strict_equals(env_, nodes[d], v, &cyclic);
  }
  if (!cyclic) {
    return Fail("nesting deeper than " + std::to_string(wire::kMaxDepth) + " levels");
  }
  // Name the first place where the chain comes back to an object it already
  // passed through: the shortest path that shows the cycle.
  for (uint32_t j = 1; j <= depth; ++j) {
    for (uint32_t i = 0; i < j; ++i) {
      bool eq = false;
      napi_strict_equals(env_, nodes[i], nodes[j], &eq);
      if (eq) {
        failure_ = Failure::kCycle;
        cycle_at_ = j;
        cycle_target_ = i;
        reason_ = "cycle";
        segments_.clear();
        return false;
      }
    }
  }
  return Fail("cycle");  // not reached: v itself repeats an ancestor
}

bool Encoder::Fail(std::string reason) {
  failure_ = Failure::kInvalid;
  reason_ = std::move(reason);
  segments_.clear();
  return false;
}

bool Encoder::FailWithException(const char* what) {
  napi_value exc = nullptr;
  napi_get_and_clear_last_exception(env_, &exc);
  std::string detail;
  if (exc != nullptr) {
    if (cause_ != nullptr) napi_delete_reference(env_, cause_);
    napi_create_reference(env_, exc, 1, &cause_);
    napi_value msg = nullptr;
    napi_valuetype t;
    napi_typeof(env_, exc, &t);
    if (t == napi_object && napi_get_named_property(env_, exc, "message", &msg) == napi_ok) {
      detail = ToStdString(env_, msg);
    } else if (t == napi_string) {
      detail = ToStdString(env_, exc);
    }
    napi_value ignored;
    napi_get_and_clear_last_exception(env_, &ignored);
  }
  return Fail(detail.empty() ? std::string(what) : std::string(what) + ": " + detail);
}

void Encoder::PushKeySegment(napi_value key) {
  segments_.push_back(PathSegment{false, 0, ToStdString(env_, key)});
}

void Encoder::PushIndexSegment(uint32_t index) {
  segments_.push_back(PathSegment{true, index, {}});
}

std::string Encoder::FormatPath(size_t count) const {
  // segments_ is innermost first; the path reads outermost first.
  std::string path;
  const size_t total = segments_.size();
  for (size_t k = 0; k < count && k < total; ++k) {
    const PathSegment& s = segments_[total - 1 - k];
    if (s.is_index) {
      path += '[' + std::to_string(s.index) + ']';
    } else if (IsIdentifier(s.key)) {
      if (!path.empty()) path += '.';
      path += s.key;
    } else {
      path += '[';
      AppendQuoted(&path, s.key);
      path += ']';
    }
  }
  return path;
}

void Encoder::Finish(const char* root, EncodeError* err) {
  auto full = [root](const std::string& rel) {
    if (rel.empty()) return std::string(root);
    return std::string(root) + (rel[0] == '[' ? "" : ".") + rel;
  };
  err->root = root;
  err->cause = cause_;
  cause_ = nullptr;
  if (failure_ == Failure::kTooLarge) {
    err->code = kTooLarge;
    err->path.clear();
    err->message = "event is larger than the limit of " + std::to_string(max_size_) +
                   " bytes once encoded";
  } else if (failure_ == Failure::kCycle) {
    err->code = kInvalidPayload;
    err->path = FormatPath(cycle_at_);
    err->message = full(err->path) + ": cycle: refers back to " + full(FormatPath(cycle_target_));
  } else {
    err->code = kInvalidPayload;
    err->path = FormatPath(segments_.size());
    err->message = full(err->path) + ": " + reason_;
  }
  segments_.clear();
  failure_ = Failure::kNone;
}

}  // namespace fork_router
