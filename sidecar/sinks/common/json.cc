#include "sinks/common/json.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>

#include "wire/msgpack.h"

namespace forkd::sinks {
namespace {

// Length of the valid UTF-8 sequence at p (1-4), or 0 if invalid.
size_t Utf8Len(const uint8_t* p, const uint8_t* end) {
  const uint8_t c = p[0];
  auto cont = [&](size_t i) { return p + i < end && (p[i] & 0xc0) == 0x80; };
  if (c < 0x80) return 1;
  if (c >= 0xc2 && c <= 0xdf) return cont(1) ? 2 : 0;
  if (c >= 0xe0 && c <= 0xef) {
    if (!cont(1) || !cont(2)) return 0;
    if (c == 0xe0 && p[1] < 0xa0) return 0;  // overlong
    if (c == 0xed && p[1] >= 0xa0) return 0;  // surrogate
    return 3;
  }
  if (c >= 0xf0 && c <= 0xf4) {
    if (!cont(1) || !cont(2) || !cont(3)) return 0;
    if (c == 0xf0 && p[1] < 0x90) return 0;
    if (c == 0xf4 && p[1] >= 0x90) return 0;
    return 4;
  }
  return 0;
}

}  // namespace

void AppendDouble(double d, std::string* out) {
  if (!std::isfinite(d)) {
    out->append("null");
    return;
  }
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof(buf), d);
  out->append(buf, static_cast<size_t>(r.ptr - buf));
}

void AppendIsoTime(int64_t seconds, uint32_t nanos, std::string* out) {
  std::tm tm{};
  time_t t = static_cast<time_t>(seconds);
  gmtime_r(&t, &tm);
  char buf[64];
  // Not strftime: its %Y does not pad years before 1000 to the four digits
  // ISO 8601 needs.
  size_t n = static_cast<size_t>(std::snprintf(buf, sizeof(buf), "%04d-%02d-%02dT%02d:%02d:%02d",
                                               tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday,
                                               tm.tm_hour, tm.tm_min, tm.tm_sec));
  out->append(buf, n);
  if (nanos % 1000000 == 0) {
    n = static_cast<size_t>(std::snprintf(buf, sizeof(buf), ".%03uZ", nanos / 1000000));
  } else if (nanos % 1000 == 0) {
    n = static_cast<size_t>(std::snprintf(buf, sizeof(buf), ".%06uZ", nanos / 1000));
  } else {
    n = static_cast<size_t>(std::snprintf(buf, sizeof(buf), ".%09uZ", nanos));
  }
  out->append(buf, n);
}

void AppendBase64(const uint8_t* p, size_t n, std::string* out) {
  static const char kTable[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  size_t i = 0;
  while (i + 3 <= n) {
    uint32_t v = (p[i] << 16) | (p[i + 1] << 8) | p[i + 2];
    char q[4] = {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], kTable[v & 63]};
    out->append(q, 4);
    i += 3;
  }
  if (n - i == 1) {
    uint32_t v = p[i] << 16;
    char q[4] = {kTable[v >> 18], kTable[(v >> 12) & 63], '=', '='};
    out->append(q, 4);
  } else if (n - i == 2) {
    uint32_t v = (p[i] << 16) | (p[i + 1] << 8);
    char q[4] = {kTable[v >> 18], kTable[(v >> 12) & 63], kTable[(v >> 6) & 63], '='};
    out->append(q, 4);
  }
}

namespace {

// What a byte of a string needs in JSON: 0 nothing, 1 an escape, 2 a check
// that it starts valid UTF-8.
constexpr std::array<uint8_t, 256> kStringClass = [] {
  std::array<uint8_t, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 1;
  t['"'] = t['\\'] = 1;
  for (int c = 0x80; c < 0x100; ++c) t[c] = 2;
  return t;
}();

// Whether any of the eight bytes in w needs more than a copy: below 0x20,
// '"', '\\' or not ASCII (exact for "any": a borrow only ever marks bytes
// above one that is marked already).
inline bool NeedsLook(uint64_t w) {
  constexpr uint64_t kOnes = 0x0101010101010101ull;
  constexpr uint64_t kHigh = 0x8080808080808080ull;
  auto below = [](uint64_t x, uint64_t n) { return (x - kOnes * n) & ~x & kHigh; };
  return ((w & kHigh) | below(w, 0x20) | below(w ^ (kOnes * '"'), 1) |
          below(w ^ (kOnes * '\\'), 1)) != 0;
}

// The msgpack string at p, read in place; false when p holds another kind.
inline bool StrAt(const uint8_t* p, std::string_view* s, const uint8_t** next) {
  const uint8_t t = *p;
  size_t n, head;
  if ((t & 0xe0) == 0xa0) {
    n = t & 0x1f;
    head = 1;
  } else if (t == 0xd9) {
    n = p[1];
    head = 2;
  } else if (t == 0xda) {
    n = (size_t{p[1]} << 8) | p[2];
    head = 3;
  } else if (t == 0xdb) {
    n = (size_t{p[1]} << 24) | (size_t{p[2]} << 16) | (size_t{p[3]} << 8) | p[4];
    head = 5;
  } else {
    return false;
  }
  *s = {reinterpret_cast<const char*>(p + head), n};
  *next = p + head + n;
  return true;
}

// What std::to_chars(double) writes, for the doubles that events mostly
// hold (amounts, prices: |d| >= 1 with at most three decimals), without its
// general algorithm: the decimal with the fewest decimals that reads back as
// d. That one is what to_chars writes when no shorter form exists, which is
// so when the last decimal's step is coarser than d's precision (at most one
// decimal of each length reads back as d) and fixed notation is the shorter
// (|d| >= 1 with a decimal, or a whole number without a trailing zero).
// Writes at most 24 chars to `out`; nullptr when d is not such a double.
char* ShortDecimal(double d, char* out) {
  const double a = std::fabs(d);
  if (!(a >= 1 && a < 4e12)) return nullptr;  // a * 1000 stays below 2^53
  const double ulp = std::nextafter(a, HUGE_VAL) - a;
  static constexpr double kScale[] = {1, 10, 100, 1000};
  for (int k = 0; k < 4; ++k) {
    const double p = kScale[k];
    if (ulp * p >= 1) return nullptr;  // several decimals of this length read back as d
    const double m = std::nearbyint(a * p);
    if (m / p != a) continue;  // exact operands: the division rounds as parsing would
    auto digits = static_cast<uint64_t>(m);
    if (k == 0 && digits % 10 == 0) return nullptr;  // 1e+05 may be shorter
    char buf[24];
    char* e = std::to_chars(buf, buf + sizeof buf, digits).ptr;
    const size_t n = static_cast<size_t>(e - buf);  // > k, since a >= 1
    if (d < 0) *out++ = '-';
    std::memcpy(out, buf, n - k);
    out += n - k;
    if (k > 0) {
      *out++ = '.';
      std::memcpy(out, buf + n - k, k);
      out += k;
    }
    return out;
  }
  return nullptr;
}

// Writes JSON into a buffer whose size() is its capacity: room is made once
// per value (Need, which knows the most that value can take) and the bytes
// are then stored without a check each, where std::string's appends would
// check and maybe grow at every one. The buffer only grows, so a reused one
// costs no allocation and no zeroing.
class Writer {
 public:
  explicit Writer(std::string* buf) : buf_(buf) {
    if (buf_->size() < 512) buf_->resize(512);
    d_ = buf_->data();
    end_ = d_ + buf_->size();
  }
  void Need(size_t n) {
    if (static_cast<size_t>(end_ - d_) < n) Grow(n);
  }
  void Put(char c) { *d_++ = c; }
  void Put(const char* s, size_t n) {
    std::memcpy(d_, s, n);
    d_ += n;
  }
  std::string_view view() const { return {buf_->data(), static_cast<size_t>(d_ - buf_->data())}; }

  void Str(std::string_view s);
  // The msgpack value at p (trusted bytes); returns the position after it.
  const uint8_t* Value(const uint8_t* p);
  // A map key: a string as itself, any other key as its JSON text, quoted.
  const uint8_t* Key(const uint8_t* p);

 private:
  // The kinds that are not read in place by Value.
  const uint8_t* Other(const uint8_t* p);
  // The entries of an array or a map, from p.
  const uint8_t* Entries(const uint8_t* p, uint32_t n, bool map);
  void Grow(size_t n) {
    const size_t used = static_cast<size_t>(d_ - buf_->data());
    buf_->resize(std::max(buf_->size() * 2, used + n));
    d_ = buf_->data() + used;
    end_ = buf_->data() + buf_->size();
  }

  std::string* buf_;
  char* d_;
  char* end_;
};

void Writer::Str(std::string_view s) {
  static const char kHex[] = "0123456789abcdef";
  Need(2 + 6 * s.size());  // \u00XX is the longest a byte becomes
  Put('"');
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto* end = p + s.size();
  while (p < end) {
    // Eight bytes at a time while none needs a look (Need left room for
    // the eight stored at once: 6 * size >= size + 8 once a whole word is
    // left, and a word is only read then).
    uint64_t w;
    while (end - p >= 8) {
      std::memcpy(&w, p, 8);
      if (NeedsLook(w)) break;
      std::memcpy(d_, &w, 8);
      d_ += 8;
      p += 8;
    }
    while (p < end && kStringClass[*p] == 0) *d_++ = static_cast<char>(*p++);
    if (p == end) break;
    const uint8_t c = *p;
    if (c >= 0x80) {
      const size_t n = Utf8Len(p, end);
      if (n != 0) {
        Put(reinterpret_cast<const char*>(p), n);
        p += n;
      } else {
        Put("\xef\xbf\xbd", 3);  // U+FFFD
        ++p;
      }
      continue;
    }
    switch (c) {
      case '"': Put("\\\"", 2); break;
      case '\\': Put("\\\\", 2); break;
      case '\n': Put("\\n", 2); break;
      case '\r': Put("\\r", 2); break;
      case '\t': Put("\\t", 2); break;
      case '\b': Put("\\b", 2); break;
      case '\f': Put("\\f", 2); break;
      default: {
        const char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        Put(u, 6);
      }
    }
    ++p;
  }
  Put('"');
}

const uint8_t* Writer::Key(const uint8_t* p) {
  std::string_view k;
  const uint8_t* next;
  if (StrAt(p, &k, &next)) {
    Str(k);
    return next;
  }
  // JSON keys are strings: a key of another type is written as its JSON text.
  std::string text;
  Writer inner(&text);
  next = inner.Value(p);
  Str(inner.view());
  return next;
}

const uint8_t* Writer::Value(const uint8_t* p) {
  // What events are mostly made of, read in place.
  const uint8_t t = *p;
  std::string_view str;
  const uint8_t* next;
  if (t <= 0x7f) {
    Need(3);
    d_ = std::to_chars(d_, d_ + 3, static_cast<unsigned>(t)).ptr;
    return p + 1;
  }
  if (StrAt(p, &str, &next)) {
    Str(str);
    return next;
  }
  if ((t & 0xf0) == 0x80) return Entries(p + 1, t & 0x0f, true);
  if ((t & 0xf0) == 0x90) return Entries(p + 1, t & 0x0f, false);
  if (t == 0xc3 || t == 0xc2) {
    Need(5);
    t == 0xc3 ? Put("true", 4) : Put("false", 5);
    return p + 1;
  }
  return Other(p);
}

const uint8_t* Writer::Entries(const uint8_t* q, uint32_t n, bool map) {
  Need(1);
  Put(map ? '{' : '[');
  for (uint32_t i = 0; i < n; ++i) {
    if (i) {
      Need(1);
      Put(',');
    }
    if (map) {
      q = Key(q);
      Need(1);
      Put(':');
    }
    q = Value(q);
  }
  Need(1);
  Put(map ? '}' : ']');
  return q;
}

const uint8_t* Writer::Other(const uint8_t* p) {
  wire::Reader r(p, SIZE_MAX / 2);
  const wire::Value v = r.Next();
  switch (v.kind) {
    case wire::Kind::kNil: Need(4); Put("null", 4); break;
    case wire::Kind::kBool:
      Need(5);
      v.b ? Put("true", 4) : Put("false", 5);
      break;
    case wire::Kind::kInt:
      Need(24);
      d_ = std::to_chars(d_, d_ + 24, v.i).ptr;
      break;
    case wire::Kind::kUint:
      Need(24);
      d_ = std::to_chars(d_, d_ + 24, v.u).ptr;
      break;
    case wire::Kind::kFloat:
      Need(32);
      if (!std::isfinite(v.f)) {
        Put("null", 4);
      } else if (char* end = ShortDecimal(v.f, d_); end != nullptr) {
        d_ = end;
      } else {
        d_ = std::to_chars(d_, d_ + 32, v.f).ptr;  // the shortest that reads back the same
      }
      break;
    case wire::Kind::kStr: Str(v.str()); break;
    case wire::Kind::kBin:
    case wire::Kind::kExt: {
      // Rare: written by the std::string helpers, then copied.
      std::string tmp;
      int64_t secs;
      uint32_t ns;
      if (v.kind == wire::Kind::kBin) {
        tmp.push_back('"');
        AppendBase64(v.ptr, v.len, &tmp);
        tmp.push_back('"');
      } else if (wire::DecodeTimestamp(v, &secs, &ns)) {
        tmp.push_back('"');
        AppendIsoTime(secs, ns, &tmp);
        tmp.push_back('"');
      } else {
        tmp.append("{\"ext\":");
        char buf[8];
        tmp.append(buf, std::to_chars(buf, buf + sizeof buf, static_cast<int>(v.ext_type)).ptr);
        tmp.append(",\"data\":\"");
        AppendBase64(v.ptr, v.len, &tmp);
        tmp.append("\"}");
      }
      Need(tmp.size());
      Put(tmp.data(), tmp.size());
      break;
    }
    case wire::Kind::kArray: return Entries(r.pos(), v.len, false);
    case wire::Kind::kMap: return Entries(r.pos(), v.len, true);
  }
  return r.pos();
}

// Each thread's buffer for the functions below, which write a whole value
// into it and append it to their string at once. Writer never calls them,
// so one is never in use twice.
std::string& Scratch() {
  thread_local std::string buf;
  return buf;
}

// After a value far larger than usual (a 1 MiB event), the buffer is let go
// rather than kept by the thread for good.
void Done(Writer& w, std::string* out) {
  out->append(w.view());
  if (Scratch().size() > (size_t{1} << 20)) std::string().swap(Scratch());
}

}  // namespace

void AppendJsonString(std::string_view s, std::string* out) {
  Writer w(&Scratch());
  w.Str(s);
  Done(w, out);
}

const uint8_t* AppendJsonKey(const uint8_t* p, std::string* out) {
  Writer w(&Scratch());
  const uint8_t* next = w.Key(p);
  Done(w, out);
  return next;
}

const uint8_t* AppendJson(const uint8_t* p, std::string* out) {
  Writer w(&Scratch());
  const uint8_t* next = w.Value(p);
  Done(w, out);
  return next;
}

void AppendJsonLine(std::string_view id, const uint8_t* payload, size_t payload_size,
                    std::string* out) {
  Writer w(&Scratch());
  w.Need(13);
  w.Put("{\"_fork_id\":", 12);
  w.Str(id);
  wire::Reader rd(payload, payload_size);
  const wire::Value m = rd.Next();
  const uint8_t* q = rd.pos();
  for (uint32_t i = 0; i < m.len; ++i) {
    std::string_view k;
    const uint8_t* value;
    if (StrAt(q, &k, &value) && k == "_fork_id") {
      wire::Reader vr(value, payload_size - static_cast<size_t>(value - payload));
      vr.Skip();
      q = vr.pos();
      continue;
    }
    w.Need(1);
    w.Put(',');
    q = w.Key(q);
    w.Need(1);
    w.Put(':');
    q = w.Value(q);
  }
  w.Need(2);
  w.Put("}\n", 2);
  Done(w, out);
}

}  // namespace forkd::sinks
