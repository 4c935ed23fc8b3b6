// Minimal msgpack primitives owned by Fork: a writer that appends to a byte
// buffer, a bounds-checked validator for untrusted bytes, and a reader that
// walks trusted (already validated) bytes in place without building a DOM.
//
// Validation is iterative (no recursion), so hostile nesting cannot blow the
// stack, and every length is checked against the bytes that remain before
// anything is allocated, so a header claiming 2^32 entries costs nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace forkd::wire {

// A growable byte buffer with cheap appends. Not thread-safe.
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t reserve) { Reserve(reserve); }
  ~Buffer() { ::operator delete(data_); }
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  Buffer(Buffer&& o) noexcept : data_(o.data_), size_(o.size_), cap_(o.cap_) {
    o.data_ = nullptr;
    o.size_ = o.cap_ = 0;
  }
  Buffer& operator=(Buffer&& o) noexcept {
    if (this != &o) {
      ::operator delete(data_);
      data_ = o.data_;
      size_ = o.size_;
      cap_ = o.cap_;
      o.data_ = nullptr;
      o.size_ = o.cap_ = 0;
    }
    return *this;
  }

  uint8_t* data() { return data_; }
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  size_t capacity() const { return cap_; }
  bool empty() const { return size_ == 0; }
  void clear() { size_ = 0; }
  std::string_view view() const { return {reinterpret_cast<const char*>(data_), size_}; }

  void Reserve(size_t n) {
    if (n <= cap_) return;
    size_t cap = cap_ ? cap_ : 256;
    while (cap < n) cap *= 2;
    auto* p = static_cast<uint8_t*>(::operator new(cap));
    if (size_) std::memcpy(p, data_, size_);
    ::operator delete(data_);
    data_ = p;
    cap_ = cap;
  }
  // Makes room for n more bytes and returns where they go; Commit(n) after.
  uint8_t* Grow(size_t n) {
    if (size_ + n > cap_) Reserve(size_ + n);
    return data_ + size_;
  }
  void Commit(size_t n) { size_ += n; }
  void Resize(size_t n) {
    Reserve(n);
    size_ = n;
  }
  void Append(const void* p, size_t n) {
    std::memcpy(Grow(n), p, n);
    size_ += n;
  }
  void Push(uint8_t b) {
    *Grow(1) = b;
    size_ += 1;
  }

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0;
  size_t cap_ = 0;
};

// Appends msgpack values to a Buffer, always in the smallest encoding.
class Writer {
 public:
  explicit Writer(Buffer* out) : out_(out) {}

  void Nil() { out_->Push(0xc0); }
  void Bool(bool v) { out_->Push(v ? 0xc3 : 0xc2); }
  void Int(int64_t v) {
    if (v >= 0) return Uint(static_cast<uint64_t>(v));
    uint8_t* p = out_->Grow(9);
    if (v >= -32) {
      p[0] = static_cast<uint8_t>(v);
      out_->Commit(1);
    } else if (v >= INT8_MIN) {
      p[0] = 0xd0;
      p[1] = static_cast<uint8_t>(v);
      out_->Commit(2);
    } else if (v >= INT16_MIN) {
      p[0] = 0xd1;
      Be16(p + 1, static_cast<uint16_t>(v));
      out_->Commit(3);
    } else if (v >= INT32_MIN) {
      p[0] = 0xd2;
      Be32(p + 1, static_cast<uint32_t>(v));
      out_->Commit(5);
    } else {
      p[0] = 0xd3;
      Be64(p + 1, static_cast<uint64_t>(v));
      out_->Commit(9);
    }
  }
  void Uint(uint64_t v) {
    uint8_t* p = out_->Grow(9);
    if (v < 128) {
      p[0] = static_cast<uint8_t>(v);
      out_->Commit(1);
    } else if (v <= UINT8_MAX) {
      p[0] = 0xcc;
      p[1] = static_cast<uint8_t>(v);
      out_->Commit(2);
    } else if (v <= UINT16_MAX) {
      p[0] = 0xcd;
      Be16(p + 1, static_cast<uint16_t>(v));
      out_->Commit(3);
    } else if (v <= UINT32_MAX) {
      p[0] = 0xce;
      Be32(p + 1, static_cast<uint32_t>(v));
      out_->Commit(5);
    } else {
      p[0] = 0xcf;
      Be64(p + 1, v);
      out_->Commit(9);
    }
  }
  void Double(double v) {
    uint8_t* p = out_->Grow(9);
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    p[0] = 0xcb;
    Be64(p + 1, bits);
    out_->Commit(9);
  }
  void StrHeader(uint32_t n) {
    uint8_t* p = out_->Grow(5);
    if (n < 32) {
      p[0] = static_cast<uint8_t>(0xa0 | n);
      out_->Commit(1);
    } else if (n <= UINT8_MAX) {
      p[0] = 0xd9;
      p[1] = static_cast<uint8_t>(n);
      out_->Commit(2);
    } else if (n <= UINT16_MAX) {
      p[0] = 0xda;
      Be16(p + 1, static_cast<uint16_t>(n));
      out_->Commit(3);
    } else {
      p[0] = 0xdb;
      Be32(p + 1, n);
      out_->Commit(5);
    }
  }
  void Str(std::string_view s) {
    StrHeader(static_cast<uint32_t>(s.size()));
    out_->Append(s.data(), s.size());
  }
  void BinHeader(uint32_t n) {
    uint8_t* p = out_->Grow(5);
    if (n <= UINT8_MAX) {
      p[0] = 0xc4;
      p[1] = static_cast<uint8_t>(n);
      out_->Commit(2);
    } else if (n <= UINT16_MAX) {
      p[0] = 0xc5;
      Be16(p + 1, static_cast<uint16_t>(n));
      out_->Commit(3);
    } else {
      p[0] = 0xc6;
      Be32(p + 1, n);
      out_->Commit(5);
    }
  }
  void Bin(const void* data, size_t n) {
    BinHeader(static_cast<uint32_t>(n));
    out_->Append(data, n);
  }
  void ArrayHeader(uint32_t n) { Container(n, 0x90, 0xdc, 0xdd); }
  void MapHeader(uint32_t n) { Container(n, 0x80, 0xde, 0xdf); }
  // The msgpack timestamp extension (type -1) in its 96-bit form, which holds
  // any instant: seconds since the epoch and nanoseconds.
  void Timestamp(int64_t seconds, uint32_t nanos) {
    uint8_t* p = out_->Grow(15);
    p[0] = 0xc7;
    p[1] = 12;
    p[2] = 0xff;
    Be32(p + 3, nanos);
    Be64(p + 7, static_cast<uint64_t>(seconds));
    out_->Commit(15);
  }
  // Appends bytes that already are one msgpack value.
  void Raw(const void* p, size_t n) { out_->Append(p, n); }

  static void Be16(uint8_t* p, uint16_t v) {
    p[0] = static_cast<uint8_t>(v >> 8);
    p[1] = static_cast<uint8_t>(v);
  }
  static void Be32(uint8_t* p, uint32_t v) {
    v = __builtin_bswap32(v);
    std::memcpy(p, &v, 4);
  }
  static void Be64(uint8_t* p, uint64_t v) {
    v = __builtin_bswap64(v);
    std::memcpy(p, &v, 8);
  }

 private:
  void Container(uint32_t n, uint8_t fix, uint8_t m16, uint8_t m32) {
    uint8_t* p = out_->Grow(5);
    if (n < 16) {
      p[0] = static_cast<uint8_t>(fix | n);
      out_->Commit(1);
    } else if (n <= UINT16_MAX) {
      p[0] = m16;
      Be16(p + 1, static_cast<uint16_t>(n));
      out_->Commit(3);
    } else {
      p[0] = m32;
      Be32(p + 1, n);
      out_->Commit(5);
    }
  }
  Buffer* out_;
};

// Hard ceiling on nesting the validator supports, whatever Limits say.
inline constexpr uint32_t kMaxCheckDepth = 128;

// Limits applied to untrusted msgpack.
struct Limits {
  uint32_t max_depth = 64;           // arrays and maps nested inside each other
  uint32_t max_container = 1u << 20;  // entries in one array or map
  uint32_t max_string = 1u << 20;     // bytes in one str, bin or ext
};

// Why bytes failed validation, and where.
struct CheckResult {
  bool ok = true;
  size_t offset = 0;        // byte offset of the offending value
  const char* reason = "";  // static string
  explicit operator bool() const { return ok; }
};

// Checks that [data, data+size) starts with exactly one well-formed msgpack
// value within `limits`; on success *consumed is its length. Never reads past
// size, never allocates.
[[nodiscard]] CheckResult CheckValue(const uint8_t* data, size_t size, const Limits& limits,
                                     size_t* consumed);

// Kinds of msgpack values as the reader sees them.
enum class Kind : uint8_t { kNil, kBool, kInt, kUint, kFloat, kStr, kBin, kArray, kMap, kExt };

// One decoded value header. For containers `len` is the entry count (a map's
// entries are key/value pairs); for str/bin/ext it is the byte length and
// `ptr` points at the bytes.
struct Value {
  Kind kind = Kind::kNil;
  bool b = false;
  int64_t i = 0;
  uint64_t u = 0;
  double f = 0;
  uint32_t len = 0;
  int8_t ext_type = 0;
  const uint8_t* ptr = nullptr;
  // The bytes of a str, bin or ext; empty for every other kind (a container's
  // `len` counts entries, not bytes), so a caller that compares without
  // checking the kind first reads nothing it should not.
  std::string_view str() const {
    if (kind != Kind::kStr && kind != Kind::kBin && kind != Kind::kExt) return {};
    return {reinterpret_cast<const char*>(ptr), len};
  }
};

// Walks msgpack that has passed CheckValue. Reading untrusted bytes with it is
// a bug; it checks nothing.
class Reader {
 public:
  Reader(const uint8_t* data, size_t size) : p_(data), end_(data + size) {}
  bool AtEnd() const { return p_ >= end_; }
  const uint8_t* pos() const { return p_; }
  void Seek(const uint8_t* p) { p_ = p; }

  // Reads one value header; str/bin/ext bodies are consumed, container
  // entries are not (read them next, or Skip the container).
  Value Next();
  // Reads the next value header without moving.
  Value Peek() {
    const uint8_t* at = p_;
    Value v = Next();
    p_ = at;
    return v;
  }
  // Skips one whole value, including everything inside it.
  void Skip();

 private:
  const uint8_t* p_;
  const uint8_t* end_;
};

// Decodes the msgpack timestamp extension into seconds and nanoseconds.
bool DecodeTimestamp(const Value& v, int64_t* seconds, uint32_t* nanos);

}  // namespace forkd::wire
