#include "sinks/common/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
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

void AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  const auto* p = reinterpret_cast<const uint8_t*>(s.data());
  const auto* end = p + s.size();
  const uint8_t* run = p;  // start of bytes that need no escaping
  while (p < end) {
    const uint8_t c = *p;
    if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
      ++p;
      continue;
    }
    if (c >= 0x80) {
      size_t n = Utf8Len(p, end);
      if (n != 0) {
        p += n;
        continue;
      }
      out->append(reinterpret_cast<const char*>(run), static_cast<size_t>(p - run));
      out->append("\xef\xbf\xbd");  // U+FFFD
      ++p;
      run = p;
      continue;
    }
    out->append(reinterpret_cast<const char*>(run), static_cast<size_t>(p - run));
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      case '\b': out->append("\\b"); break;
      case '\f': out->append("\\f"); break;
      default: {
        char u[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
        out->append(u, 6);
      }
    }
    ++p;
    run = p;
  }
  out->append(reinterpret_cast<const char*>(run), static_cast<size_t>(p - run));
  out->push_back('"');
}

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

const uint8_t* AppendJsonKey(const uint8_t* p, std::string* out) {
  wire::Reader kr(p, SIZE_MAX / 2);
  const wire::Value k = kr.Peek();
  if (k.kind == wire::Kind::kStr) {
    kr.Next();
    AppendJsonString(k.str(), out);
    return kr.pos();
  }
  // JSON keys are strings: a key of another type is written as its JSON text.
  std::string key;
  const uint8_t* next = AppendJson(p, &key);
  AppendJsonString(key, out);
  return next;
}

const uint8_t* AppendJson(const uint8_t* p, std::string* out) {
  // Trusted bytes: the reader is given a generous end; values are validated.
  wire::Reader r(p, SIZE_MAX / 2);
  wire::Value v = r.Next();
  char buf[24];
  switch (v.kind) {
    case wire::Kind::kNil: out->append("null"); break;
    case wire::Kind::kBool: out->append(v.b ? "true" : "false"); break;
    case wire::Kind::kInt: {
      auto res = std::to_chars(buf, buf + sizeof(buf), v.i);
      out->append(buf, static_cast<size_t>(res.ptr - buf));
      break;
    }
    case wire::Kind::kUint: {
      auto res = std::to_chars(buf, buf + sizeof(buf), v.u);
      out->append(buf, static_cast<size_t>(res.ptr - buf));
      break;
    }
    case wire::Kind::kFloat: AppendDouble(v.f, out); break;
    case wire::Kind::kStr: AppendJsonString(v.str(), out); break;
    case wire::Kind::kBin:
      out->push_back('"');
      AppendBase64(v.ptr, v.len, out);
      out->push_back('"');
      break;
    case wire::Kind::kExt: {
      int64_t s;
      uint32_t ns;
      if (wire::DecodeTimestamp(v, &s, &ns)) {
        out->push_back('"');
        AppendIsoTime(s, ns, out);
        out->push_back('"');
      } else {
        out->append("{\"ext\":");
        auto res = std::to_chars(buf, buf + sizeof(buf), static_cast<int>(v.ext_type));
        out->append(buf, static_cast<size_t>(res.ptr - buf));
        out->append(",\"data\":\"");
        AppendBase64(v.ptr, v.len, out);
        out->append("\"}");
      }
      break;
    }
    case wire::Kind::kArray: {
      const uint8_t* q = r.pos();
      out->push_back('[');
      for (uint32_t i = 0; i < v.len; ++i) {
        if (i) out->push_back(',');
        q = AppendJson(q, out);
      }
      out->push_back(']');
      return q;
    }
    case wire::Kind::kMap: {
      const uint8_t* q = r.pos();
      out->push_back('{');
      for (uint32_t i = 0; i < v.len; ++i) {
        if (i) out->push_back(',');
        q = AppendJsonKey(q, out);
        out->push_back(':');
        q = AppendJson(q, out);
      }
      out->push_back('}');
      return q;
    }
  }
  return r.pos();
}

void AppendJsonLine(std::string_view id, const uint8_t* payload, size_t payload_size,
                    std::string* out) {
  out->append("{\"_fork_id\":");
  AppendJsonString(id, out);
  wire::Reader rd(payload, payload_size);
  const wire::Value m = rd.Next();
  const uint8_t* q = rd.pos();
  for (uint32_t i = 0; i < m.len; ++i) {
    wire::Reader kr(q, payload_size - static_cast<size_t>(q - payload));
    const wire::Value k = kr.Next();
    if (k.kind == wire::Kind::kStr && k.str() == "_fork_id") {
      kr.Skip();
      q = kr.pos();
      continue;
    }
    out->push_back(',');
    q = AppendJsonKey(q, out);
    out->push_back(':');
    q = AppendJson(q, out);
  }
  out->append("}\n");
}

}  // namespace forkd::sinks
