#include "ingest/http/json_events.h"

#include <charconv>
#include <cmath>
#include <cstring>

#include "wire/protocol.h"

namespace forkd::ingest::http {

namespace {

// What the JS layer allows (js/index.cjs).
constexpr size_t kMaxDestinationLength = 128;
constexpr size_t kMaxDestinations = 64;
constexpr size_t kMaxIdempotencyKeyBytes = 256;
constexpr int64_t kMaxTimeoutMs = 2147483647;
constexpr const char* kOptionNames =
    "timestamp, aggregate, key, idempotencyKey, ack, timeoutMs, transform";

bool IsIdentifier(std::string_view s) {
  if (s.empty() || (s[0] >= '0' && s[0] <= '9')) return false;
  for (char c : s) {
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
          c == '$')) {
      return false;
    }
  }
  return true;
}

std::string KeySegment(std::string_view key) {
  if (IsIdentifier(key)) return "." + std::string(key);
  std::string s = "[";
  AppendJsonString(key, &s);
  s += "]";
  return s;
}

void PutBe16(uint8_t* p, uint16_t v) {
  p[0] = static_cast<uint8_t>(v >> 8);
  p[1] = static_cast<uint8_t>(v);
}
void PutBe32(uint8_t* p, uint32_t v) {
  p[0] = static_cast<uint8_t>(v >> 24);
  p[1] = static_cast<uint8_t>(v >> 16);
  p[2] = static_cast<uint8_t>(v >> 8);
  p[3] = static_cast<uint8_t>(v);
}

// Writes the final header of a container whose 5-byte placeholder is at
// `pos`, moving its body back when the header is shorter (msgpack's
// smallest form, as the addon writes).
void PatchHeader(wire::Buffer* out, size_t pos, uint32_t count, bool map) {
  uint8_t* h = out->data() + pos;
  size_t len = 5;
  if (count < 16) {
    h[0] = static_cast<uint8_t>((map ? 0x80 : 0x90) | count);
    len = 1;
  } else if (count <= 0xffff) {
    h[0] = map ? 0xde : 0xdc;
    PutBe16(h + 1, static_cast<uint16_t>(count));
    len = 3;
  } else {
    h[0] = map ? 0xdf : 0xdd;
    PutBe32(h + 1, count);
    return;
  }
  const size_t body = out->size() - pos - 5;
  std::memmove(h + len, h + 5, body);
  out->Resize(pos + len + body);
}

class Parser {
 public:
  Parser(std::string_view text, size_t base) : begin_(text.data()), p_(text.data()),
                                               end_(text.data() + text.size()), base_(base) {}

  // One `{ payload, destination, options }`, appended to *out.
  bool Envelope(const EventLimits& limits, Events* out);
  void SkipWs() {
    while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
  }
  bool AtEnd() const { return p_ >= end_; }
  char Peek() const { return p_ < end_ ? *p_ : 0; }
  bool Expect(char c, const char* what) {
    SkipWs();
    if (p_ < end_ && *p_ == c) {
      ++p_;
      return true;
    }
    return Syntax(what);
  }
  void Advance() { ++p_; }
  size_t offset() const { return base_ + static_cast<size_t>(p_ - begin_); }

  const char* code_ = wire::kCodeInvalidPayload;
  std::string message_;
  std::vector<std::string> segments_;  // innermost first
  size_t error_at_ = 0;                // body offset of a syntax error; SIZE_MAX: none
  bool syntax_ = false;

  bool Syntax(const char* expected) {
    syntax_ = true;
    error_at_ = offset();
    if (p_ >= end_) {
      message_ = std::string("not valid JSON: ") + expected + ", found the end";
    } else {
      const unsigned char c = static_cast<unsigned char>(*p_);
      char found[16];
      if (c >= 0x20 && c < 0x7f) {
        std::snprintf(found, sizeof found, "'%c'", c);
      } else {
        std::snprintf(found, sizeof found, "byte 0x%02x", c);
      }
      message_ = std::string("not valid JSON: ") + expected + ", found " + found;
    }
    return false;
  }
  bool Fail(std::string message, const char* code = wire::kCodeInvalidPayload) {
    code_ = code;
    message_ = std::move(message);
    return false;
  }

  // Any JSON value, as msgpack. `depth`: nesting of the container it is in.
  bool Value(wire::Buffer* out, uint32_t depth);
  // A JSON string into *s (decoded, valid UTF-8). At the opening quote.
  bool String(std::string* s);
  // A JSON number. At its first character.
  bool Number(wire::Buffer* out, double* as_double = nullptr);
  // Words for the value at the cursor, for messages ("the string \"x\"");
  // does not move.
  std::string Describe();

 private:
  bool Object(wire::Buffer* out, uint32_t depth);
  bool Array(wire::Buffer* out, uint32_t depth);
  bool Literal(const char* word, size_t n);
  bool Options(wire::Buffer* wire_options, Event* ev);
  bool DestinationName(std::string name, const std::string& where, std::vector<std::string>* out);
  bool StringOption(const char* name, std::string* s);

  const char* begin_;
  const char* p_;
  const char* end_;
  size_t base_;
  std::string scratch_;
};

bool Parser::Literal(const char* word, size_t n) {
  if (static_cast<size_t>(end_ - p_) >= n && std::memcmp(p_, word, n) == 0) {
    p_ += n;
    return true;
  }
  return Syntax("expected a JSON value");
}

bool Parser::Value(wire::Buffer* out, uint32_t depth) {
  SkipWs();
  if (p_ >= end_) return Syntax("expected a value");
  wire::Writer w(out);
  switch (*p_) {
    case '{':
      return Object(out, depth + 1);
    case '[':
      return Array(out, depth + 1);
    case '"': {
      if (!String(&scratch_)) return false;
      w.Str(scratch_);
      return true;
    }
    case 't':
      if (!Literal("true", 4)) return false;
      w.Bool(true);
      return true;
    case 'f':
      if (!Literal("false", 5)) return false;
      w.Bool(false);
      return true;
    case 'n':
      if (!Literal("null", 4)) return false;
      w.Nil();
      return true;
    default:
      if (*p_ == '-' || (*p_ >= '0' && *p_ <= '9')) return Number(out);
      return Syntax("expected a JSON value");
  }
}

bool Parser::Object(wire::Buffer* out, uint32_t depth) {
  if (depth > wire::kMaxDepth) {
    return Fail("nesting deeper than " + std::to_string(wire::kMaxDepth) + " levels");
  }
  ++p_;  // '{'
  const size_t pos = out->size();
  out->Append("\xdf\0\0\0\0", 5);
  uint32_t count = 0;
  SkipWs();
  if (Peek() == '}') {
    ++p_;
  } else {
    for (;;) {
      SkipWs();
      if (Peek() != '"') return Syntax("expected a member name in double quotes");
      if (!String(&scratch_)) return false;
      wire::Writer(out).Str(scratch_);
      std::string key = scratch_;
      if (!Expect(':', "expected ':' after a member name")) return false;
      if (!Value(out, depth)) {
        segments_.push_back(KeySegment(key));
        return false;
      }
      ++count;
      SkipWs();
      if (Peek() == ',') {
        ++p_;
        continue;
      }
      if (Peek() == '}') {
        ++p_;
        break;
      }
      return Syntax("expected ',' or '}'");
    }
  }
  PatchHeader(out, pos, count, /*map=*/true);
  return true;
}

bool Parser::Array(wire::Buffer* out, uint32_t depth) {
  if (depth > wire::kMaxDepth) {
    return Fail("nesting deeper than " + std::to_string(wire::kMaxDepth) + " levels");
  }
  ++p_;  // '['
  const size_t pos = out->size();
  out->Append("\xdd\0\0\0\0", 5);
  uint32_t count = 0;
  SkipWs();
  if (Peek() == ']') {
    ++p_;
  } else {
    for (;;) {
      if (!Value(out, depth)) {
        segments_.push_back("[" + std::to_string(count) + "]");
        return false;
      }
      ++count;
      SkipWs();
      if (Peek() == ',') {
        ++p_;
        continue;
      }
      if (Peek() == ']') {
        ++p_;
        break;
      }
      return Syntax("expected ',' or ']'");
    }
  }
  PatchHeader(out, pos, count, /*map=*/false);
  return true;
}

void AppendUtf8(uint32_t cp, std::string* s) {
  if (cp < 0x80) {
    s->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    s->push_back(static_cast<char>(0xc0 | (cp >> 6)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else if (cp < 0x10000) {
    s->push_back(static_cast<char>(0xe0 | (cp >> 12)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  } else {
    s->push_back(static_cast<char>(0xf0 | (cp >> 18)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
    s->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
    s->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
  }
}

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The length of the valid UTF-8 sequence at p (a non-ASCII lead byte), or 0.
size_t Utf8Length(const unsigned char* p, const unsigned char* end) {
  const unsigned char c = p[0];
  size_t n;
  uint32_t cp;
  if (c >= 0xc2 && c <= 0xdf) {
    n = 2;
    cp = c & 0x1f;
  } else if (c >= 0xe0 && c <= 0xef) {
    n = 3;
    cp = c & 0x0f;
  } else if (c >= 0xf0 && c <= 0xf4) {
    n = 4;
    cp = c & 0x07;
  } else {
    return 0;
  }
  if (static_cast<size_t>(end - p) < n) return 0;
  for (size_t i = 1; i < n; ++i) {
    if ((p[i] & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (p[i] & 0x3f);
  }
  if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
      (cp >= 0xd800 && cp <= 0xdfff)) {
    return 0;
  }
  return n;
}

bool Parser::String(std::string* s) {
  ++p_;  // '"'
  s->clear();
  const char* run = p_;
  for (;;) {
    if (p_ >= end_) return Syntax("expected the closing '\"' of a string");
    const unsigned char c = static_cast<unsigned char>(*p_);
    if (c == '"') {
      s->append(run, static_cast<size_t>(p_ - run));
      ++p_;
      return true;
    }
    if (c < 0x20) return Syntax("expected a character (control characters are escaped in JSON)");
    if (c >= 0x80) {
      const size_t n = Utf8Length(reinterpret_cast<const unsigned char*>(p_),
                                  reinterpret_cast<const unsigned char*>(end_));
      if (n == 0) return Syntax("expected UTF-8 text in a string");
      p_ += n;
      continue;
    }
    if (c != '\\') {
      ++p_;
      continue;
    }
    s->append(run, static_cast<size_t>(p_ - run));
    ++p_;
    if (p_ >= end_) return Syntax("expected an escape");
    switch (*p_) {
      case '"': s->push_back('"'); break;
      case '\\': s->push_back('\\'); break;
      case '/': s->push_back('/'); break;
      case 'b': s->push_back('\b'); break;
      case 'f': s->push_back('\f'); break;
      case 'n': s->push_back('\n'); break;
      case 'r': s->push_back('\r'); break;
      case 't': s->push_back('\t'); break;
      case 'u': {
        auto hex4 = [&](const char* at, uint32_t* v) {
          if (end_ - at < 4) return false;
          *v = 0;
          for (int i = 0; i < 4; ++i) {
            const int d = HexDigit(at[i]);
            if (d < 0) return false;
            *v = (*v << 4) | static_cast<uint32_t>(d);
          }
          return true;
        };
        uint32_t cp;
        if (!hex4(p_ + 1, &cp)) return Syntax("expected 4 hex digits after \\u");
        p_ += 4;
        if (cp >= 0xd800 && cp <= 0xdbff) {
          uint32_t lo;
          if (end_ - p_ >= 7 && p_[1] == '\\' && p_[2] == 'u' && hex4(p_ + 3, &lo) &&
              lo >= 0xdc00 && lo <= 0xdfff) {
            cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            p_ += 6;
          } else {
            cp = 0xfffd;  // a lone surrogate, as a JS string encodes it
          }
        } else if (cp >= 0xdc00 && cp <= 0xdfff) {
          cp = 0xfffd;
        }
        AppendUtf8(cp, s);
        break;
      }
      default:
        return Syntax("expected one of \\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u");
    }
    ++p_;
    run = p_;
  }
}

bool Parser::Number(wire::Buffer* out, double* as_double) {
  const char* start = p_;
  bool integer = true;
  if (Peek() == '-') ++p_;
  if (Peek() == '0') {
    ++p_;
  } else if (Peek() >= '1' && Peek() <= '9') {
    while (Peek() >= '0' && Peek() <= '9') ++p_;
  } else {
    return Syntax("expected a digit");
  }
  if (Peek() == '.') {
    integer = false;
    ++p_;
    if (!(Peek() >= '0' && Peek() <= '9')) return Syntax("expected a digit after '.'");
    while (Peek() >= '0' && Peek() <= '9') ++p_;
  }
  if (Peek() == 'e' || Peek() == 'E') {
    integer = false;
    ++p_;
    if (Peek() == '+' || Peek() == '-') ++p_;
    if (!(Peek() >= '0' && Peek() <= '9')) return Syntax("expected a digit in the exponent");
    while (Peek() >= '0' && Peek() <= '9') ++p_;
  }
  wire::Writer w(out);
  if (integer) {
    if (*start == '-') {
      int64_t v;
      auto r = std::from_chars(start, p_, v);
      if (r.ec == std::errc() && r.ptr == p_) {
        if (as_double) *as_double = static_cast<double>(v);
        w.Int(v);
        return true;
      }
    } else {
      uint64_t v;
      auto r = std::from_chars(start, p_, v);
      if (r.ec == std::errc() && r.ptr == p_) {
        if (as_double) *as_double = static_cast<double>(v);
        w.Uint(v);
        return true;
      }
    }
  }
  double d;
  auto r = std::from_chars(start, p_, d);
  if (r.ec != std::errc() || r.ptr != p_ || !std::isfinite(d)) {
    p_ = start;
    return Fail("the number " + std::string(start, std::min<size_t>(r.ptr - start, 40)) +
                " is out of range");
  }
  if (as_double) *as_double = d;
  // A JS number that is a whole number is encoded as an integer.
  if (d == std::trunc(d) && std::fabs(d) < 9007199254740992.0) {
    w.Int(static_cast<int64_t>(d));
  } else {
    w.Double(d);
  }
  return true;
}

std::string Parser::Describe() {
  SkipWs();
  if (p_ >= end_) return "nothing";
  const char* at = p_;
  std::string d;
  switch (*p_) {
    case '{': d = "an object"; break;
    case '[': d = "an array"; break;
    case 't': d = "boolean true"; break;
    case 'f': d = "boolean false"; break;
    case 'n': d = "null"; break;
    case '"': {
      std::string s;
      const bool ok = String(&s);
      if (ok) {
        if (s.size() > 40) s = s.substr(0, 40) + "…";
        d = "the string ";
        AppendJsonString(s, &d);
      } else {
        d = "a string";
      }
      break;
    }
    default: {
      const char* q = p_;
      while (q < end_ && q - p_ < 40 &&
             (*q == '-' || *q == '+' || *q == '.' || *q == 'e' || *q == 'E' ||
              (*q >= '0' && *q <= '9'))) {
        ++q;
      }
      d = "number " + std::string(p_, static_cast<size_t>(q - p_));
    }
  }
  p_ = at;
  syntax_ = false;
  return d;
}

bool Parser::DestinationName(std::string name, const std::string& where,
                             std::vector<std::string>* out) {
  if (name.empty()) return Fail(where + " must not be empty");
  if (name.size() > kMaxDestinationLength) {
    return Fail(where + " is longer than " + std::to_string(kMaxDestinationLength) +
                " characters");
  }
  out->push_back(std::move(name));
  return true;
}

bool Parser::StringOption(const char* name, std::string* s) {
  SkipWs();
  if (Peek() != '"' ) {
    return Fail(std::string("options.") + name + " must be a non-empty string (got " + Describe() +
                ")");
  }
  if (!String(s)) return false;
  if (s->empty()) {
    return Fail(std::string("options.") + name + " must be a non-empty string (got the string \"\")");
  }
  return true;
}

bool Parser::Options(wire::Buffer* wo, Event* ev) {
  ++p_;  // '{'
  const size_t pos = wo->size();
  wo->Append("\xdf\0\0\0\0", 5);
  uint32_t count = 0;
  wire::Writer w(wo);
  std::string name, s;
  uint32_t seen = 0;
  SkipWs();
  if (Peek() == '}') {
    ++p_;
    wo->Resize(pos);
    return true;
  }
  for (;;) {
    SkipWs();
    if (Peek() != '"') return Syntax("expected an option name in double quotes");
    if (!String(&name)) return false;
    if (!Expect(':', "expected ':' after an option name")) return false;
    static const char* const kNames[] = {"timestamp", "aggregate", "key", "idempotencyKey",
                                         "ack", "timeoutMs", "transform"};
    int which = -1;
    for (int i = 0; i < 7; ++i) {
      if (name == kNames[i]) which = i;
    }
    auto here = [&] { segments_.push_back(KeySegment(name)); };
    if (which < 0) {
      here();
      return Fail("options." + name + ": unknown option (known: " + kOptionNames + ")");
    }
    if (seen & (1u << which)) {
      here();
      return Fail("options." + name + " is given twice");
    }
    seen |= 1u << which;
    SkipWs();
    if (Peek() == 'n') {  // null: as if omitted
      if (!Literal("null", 4)) return false;
    } else {
      bool ok = true;
      switch (which) {
        case 0: {  // timestamp
          if (Peek() == 't') {
            if (!Literal("true", 4)) return false;
            w.Str("timestamp");
            w.Bool(true);
            ++count;
          } else if (Peek() == 'f') {
            if (!Literal("false", 5)) return false;
          } else if (Peek() == '{') {
            ++p_;
            w.Str("timestamp");
            ++count;
            const size_t tpos = wo->size();
            wo->Append("\xdf\0\0\0\0", 5);
            uint32_t tcount = 0;
            SkipWs();
            if (Peek() == '}') {
              ++p_;
            } else {
              for (;;) {
                SkipWs();
                if (Peek() != '"') return Syntax("expected a setting name in double quotes");
                std::string k;
                if (!String(&k)) return false;
                if (!Expect(':', "expected ':' after a setting name")) return false;
                SkipWs();
                if (k == "field") {
                  if (Peek() != '"' || !String(&s) || s.empty()) {
                    segments_.push_back(".field");
                    here();
                    return Fail("options.timestamp.field must be a non-empty string");
                  }
                  w.Str("field");
                  w.Str(s);
                  ++tcount;
                } else if (k == "format") {
                  const bool str = Peek() == '"';
                  if (!str || !String(&s) || (s != "iso" && s != "epoch_ms")) {
                    segments_.push_back(".format");
                    here();
                    return Fail("options.timestamp.format must be 'iso' or 'epoch_ms'");
                  }
                  w.Str("format");
                  w.Str(s);
                  ++tcount;
                } else {
                  segments_.push_back(KeySegment(k));
                  here();
                  return Fail("options.timestamp." + k + ": unknown setting (known: field, format)");
                }
                SkipWs();
                if (Peek() == ',') {
                  ++p_;
                  continue;
                }
                if (Peek() == '}') {
                  ++p_;
                  break;
                }
                return Syntax("expected ',' or '}'");
              }
            }
            PatchHeader(wo, tpos, tcount, /*map=*/true);
          } else {
            ok = Fail("options.timestamp must be true or { field?: string, format?: 'iso' | "
                      "'epoch_ms' } (got " + Describe() + ")");
          }
          break;
        }
        case 1:  // aggregate
          if (Peek() == '{') {
            w.Str("aggregate");
            ok = Value(wo, 1);
            ++count;
          } else if (Peek() == '"') {
            if (!String(&s)) return false;
            if (s.empty()) {
              ok = Fail("options.aggregate must be a window name like 'daily' or 'hourly', or an "
                        "object (got the string \"\")");
            } else {
              w.Str("aggregate");
              w.Str(s);
              ++count;
            }
          } else {
            ok = Fail("options.aggregate must be a window name like 'daily' or 'hourly', or an "
                      "object (got " + Describe() + ")");
          }
          break;
        case 2:  // key
          ok = StringOption("key", &s);
          if (ok) {
            w.Str("key");
            w.Str(s);
            ++count;
          }
          break;
        case 3:  // idempotencyKey
          ok = StringOption("idempotencyKey", &ev->key);
          if (ok && ev->key.size() > kMaxIdempotencyKeyBytes) {
            ok = Fail("options.idempotencyKey is longer than " +
                      std::to_string(kMaxIdempotencyKeyBytes) + " bytes");
          }
          break;
        case 4: {  // ack
          const std::string got = Describe();
          if (Peek() == '"' && String(&s) &&
              (s == "none" || s == "accepted" || s == "delivered")) {
            ev->ack = s == "none" ? AckLevel::kNone
                      : s == "accepted" ? AckLevel::kAccepted
                                        : AckLevel::kDelivered;
          } else {
            if (syntax_) return false;
            ok = Fail("options.ack must be 'none', 'accepted' or 'delivered' (got " + got + ")");
          }
          break;
        }
        case 5: {  // timeoutMs
          const std::string got = Describe();
          double d = 0;
          wire::Buffer ignore;
          const bool number = Peek() == '-' || (Peek() >= '0' && Peek() <= '9');
          if (!number || !Number(&ignore, &d) || d != std::trunc(d) || d < 1 ||
              d > static_cast<double>(kMaxTimeoutMs)) {
            if (syntax_) return false;
            ok = Fail("options.timeoutMs must be a positive integer number of milliseconds (got " +
                      got + ")");
          } else {
            ev->timeout_ms = static_cast<int64_t>(d);
          }
          break;
        }
        case 6:  // transform
          if (Peek() == '"') {
            if (!String(&s)) return false;
            if (s.empty()) {
              ok = Fail("options.transform must not be empty (got the string \"\")");
            } else {
              w.Str("transform");
              w.Str(s);
              ++count;
            }
          } else if (Peek() == '[') {
            ++p_;
            std::vector<std::string> names;
            SkipWs();
            if (Peek() == ']') {
              ok = Fail("options.transform must be a template name or a non-empty array of names "
                        "(got an empty array)");
              break;
            }
            for (;;) {
              SkipWs();
              if (Peek() != '"' || !String(&s) || s.empty()) {
                if (syntax_) return false;
                segments_.push_back("[" + std::to_string(names.size()) + "]");
                here();
                return Fail("options.transform[" + std::to_string(names.size()) +
                            "] must be a non-empty template name");
              }
              names.push_back(s);
              SkipWs();
              if (Peek() == ',') {
                ++p_;
                continue;
              }
              if (Peek() == ']') {
                ++p_;
                break;
              }
              return Syntax("expected ',' or ']'");
            }
            w.Str("transform");
            w.ArrayHeader(static_cast<uint32_t>(names.size()));
            for (const auto& n : names) w.Str(n);
            ++count;
          } else {
            ok = Fail("options.transform must be a template name or a non-empty array of names "
                      "(got " + Describe() + ")");
          }
          break;
      }
      if (!ok) {
        if (!syntax_) here();
        return false;
      }
    }
    SkipWs();
    if (Peek() == ',') {
      ++p_;
      continue;
    }
    if (Peek() == '}') {
      ++p_;
      break;
    }
    return Syntax("expected ',' or '}'");
  }
  if (count == 0) {
    wo->Resize(pos);
  } else {
    PatchHeader(wo, pos, count, /*map=*/true);
  }
  return true;
}

bool Parser::Envelope(const EventLimits& limits, Events* out) {
  SkipWs();
  if (Peek() != '{') {
    if (p_ < end_ && (*p_ == '[' || *p_ == '"' || *p_ == '-' || (*p_ >= '0' && *p_ <= '9') ||
                      *p_ == 't' || *p_ == 'f' || *p_ == 'n')) {
      return Fail("an event must be an object { payload, destination?, options? } (got " +
                  Describe() + ")");
    }
    return Syntax("expected an object { payload, destination?, options? }");
  }
  ++p_;
  Event ev;
  wire::Buffer payload, options;
  bool has_payload = false, has_dest = false, has_options = false;
  SkipWs();
  if (Peek() != '}') {
    for (;;) {
      SkipWs();
      if (Peek() != '"') return Syntax("expected a member name in double quotes");
      std::string name;
      if (!String(&name)) return false;
      if (!Expect(':', "expected ':' after a member name")) return false;
      SkipWs();
      if (name == "payload") {
        if (has_payload) return Fail("payload is given twice");
        has_payload = true;
        if (Peek() != '{') {
          if (Peek() == 0 || syntax_) return Syntax("expected a value");
          segments_.push_back(".payload");
          return Fail("payload must be a plain object (got " + Describe() + ")");
        }
        if (!Value(&payload, 0)) {
          segments_.push_back(".payload");
          return false;
        }
      } else if (name == "destination") {
        if (has_dest) return Fail("destination is given twice");
        has_dest = true;
        if (Peek() == 'n') {
          if (!Literal("null", 4)) return false;
        } else if (Peek() == '"') {
          std::string d;
          if (!String(&d)) return false;
          if (!DestinationName(std::move(d), "destination", &ev.destinations)) {
            segments_.push_back(".destination");
            return false;
          }
        } else if (Peek() == '[') {
          ++p_;
          SkipWs();
          if (Peek() == ']') {
            segments_.push_back(".destination");
            return Fail("destination must not be an empty array (omit it to let the configured "
                        "routes decide)");
          }
          for (size_t i = 0;; ++i) {
            SkipWs();
            const std::string where = "destination[" + std::to_string(i) + "]";
            if (Peek() != '"') {
              if (syntax_) return false;
              segments_.push_back("[" + std::to_string(i) + "]");
              segments_.push_back(".destination");
              return Fail(where + " must be a string (got " + Describe() + ")");
            }
            std::string d;
            if (!String(&d)) return false;
            if (i >= kMaxDestinations) {
              segments_.push_back(".destination");
              return Fail("destination lists more than " + std::to_string(kMaxDestinations) +
                          " names; at most " + std::to_string(kMaxDestinations) +
                          " are allowed");
            }
            if (!DestinationName(std::move(d), where, &ev.destinations)) {
              segments_.push_back("[" + std::to_string(i) + "]");
              segments_.push_back(".destination");
              return false;
            }
            SkipWs();
            if (Peek() == ',') {
              ++p_;
              continue;
            }
            if (Peek() == ']') {
              ++p_;
              break;
            }
            return Syntax("expected ',' or ']'");
          }
        } else {
          if (Peek() == 0) return Syntax("expected a value");
          segments_.push_back(".destination");
          return Fail("destination must be a string, an array of strings, or omitted (got " +
                      Describe() + ")");
        }
      } else if (name == "options") {
        if (has_options) return Fail("options is given twice");
        has_options = true;
        if (Peek() == 'n') {
          if (!Literal("null", 4)) return false;
        } else if (Peek() == '{') {
          if (!Options(&options, &ev)) {
            segments_.push_back(".options");
            return false;
          }
        } else {
          if (Peek() == 0) return Syntax("expected a value");
          segments_.push_back(".options");
          return Fail("options must be an object (got " + Describe() + ")");
        }
      } else {
        segments_.push_back(KeySegment(name));
        return Fail("unknown field '" + name +
                    "': an event is { payload, destination?, options? }");
      }
      SkipWs();
      if (Peek() == ',') {
        ++p_;
        continue;
      }
      if (Peek() == '}') {
        ++p_;
        break;
      }
      return Syntax("expected ',' or '}'");
    }
  } else {
    ++p_;
  }
  if (!has_payload) {
    segments_.push_back(".payload");
    return Fail("payload is missing: an event is { payload, destination?, options? }");
  }
  if (out->events.size() >= limits.max_events) {
    return Fail("the body holds more than " + std::to_string(limits.max_events) +
                " events; send them in several requests", wire::kCodeTooLarge);
  }
  // [destinations, key, options, payload], as the addon encodes it.
  wire::Buffer& b = out->wire;
  const size_t start = b.size();
  wire::Writer w(&b);
  b.Push(0x90 | wire::kEventArity);
  if (ev.destinations.empty()) {
    w.Nil();
  } else {
    w.ArrayHeader(static_cast<uint32_t>(ev.destinations.size()));
    for (const auto& d : ev.destinations) w.Str(d);
  }
  if (ev.key.empty()) {
    w.Nil();
  } else {
    w.Str(ev.key);
  }
  if (options.empty()) {
    w.Nil();
  } else {
    b.Append(options.data(), options.size());
  }
  b.Append(payload.data(), payload.size());
  ev.offset = start;
  ev.size = b.size() - start;
  if (ev.size > limits.max_event) {
    const size_t size = ev.size;
    b.Resize(start);
    return Fail("the event is " + std::to_string(size) + " bytes encoded; forkd takes at most " +
                std::to_string(limits.max_event) + " (limits.max_event)",
                wire::kCodeTooLarge);
  }
  out->events.push_back(std::move(ev));
  return true;
}

// Line and column (from 1) of byte `offset` of `body`.
std::string Where(std::string_view body, size_t offset) {
  size_t line = 1, col = 1;
  for (size_t i = 0; i < offset && i < body.size(); ++i) {
    if (body[i] == '\n') {
      ++line;
      col = 1;
    } else {
      ++col;
    }
  }
  return "line " + std::to_string(line) + ", column " + std::to_string(col);
}

bool Finish(std::string_view body, Parser& p, const std::string& prefix, BodyError* error) {
  error->code = p.code_;
  error->message = p.message_;
  if (p.syntax_) error->message += " at " + Where(body, p.error_at_);
  std::string path = prefix;
  for (auto it = p.segments_.rbegin(); it != p.segments_.rend(); ++it) path += *it;
  if (!path.empty() && path[0] == '.') path.erase(0, 1);
  error->path = std::move(path);
  if (!error->path.empty() && !prefix.empty()) {
    // "[3]: options.ack must be ..." reads better than the bare message.
    error->message = prefix + ": " + error->message;
  }
  return false;
}

}  // namespace

const char* AckLevelName(AckLevel a) {
  switch (a) {
    case AckLevel::kNone: return "none";
    case AckLevel::kDelivered: return "delivered";
    default: return "accepted";
  }
}

void AppendJsonString(std::string_view s, std::string* out) {
  static const char kHex[] = "0123456789abcdef";
  out->push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out->append("\\\""); break;
      case '\\': out->append("\\\\"); break;
      case '\n': out->append("\\n"); break;
      case '\r': out->append("\\r"); break;
      case '\t': out->append("\\t"); break;
      default:
        if (c < 0x20 || c == 0x7f) {
          out->append("\\u00");
          out->push_back(kHex[c >> 4]);
          out->push_back(kHex[c & 15]);
        } else {
          out->push_back(static_cast<char>(c));
        }
    }
  }
  out->push_back('"');
}

bool ParseEvents(std::string_view body, BodyFormat format, const EventLimits& limits,
                 Events* out, BodyError* error) {
  out->clear();
  if (format == BodyFormat::kNdjson) {
    size_t start = 0, line = 0;
    while (start < body.size()) {
      size_t end = body.find('\n', start);
      if (end == std::string_view::npos) end = body.size();
      std::string_view text = body.substr(start, end - start);
      Parser p(text, start);
      p.SkipWs();
      if (!p.AtEnd()) {
        const std::string prefix = "[" + std::to_string(line) + "]";
        if (!p.Envelope(limits, out)) return Finish(body, p, prefix, error);
        p.SkipWs();
        if (!p.AtEnd()) {
          p.Syntax("expected the end of the line after an event");
          return Finish(body, p, prefix, error);
        }
        ++line;
      }
      start = end + 1;
    }
  } else {
    Parser p(body, 0);
    p.SkipWs();
    if (p.Peek() == '[') {
      p.Advance();
      p.SkipWs();
      if (p.Peek() != ']') {
        for (size_t i = 0;; ++i) {
          const std::string prefix = "[" + std::to_string(i) + "]";
          if (!p.Envelope(limits, out)) return Finish(body, p, prefix, error);
          p.SkipWs();
          if (p.Peek() == ',') {
            p.Advance();
            continue;
          }
          if (p.Peek() == ']') break;
          p.Syntax("expected ',' or ']' after an event");
          return Finish(body, p, prefix, error);
        }
      }
      p.Advance();
    } else {
      out->single = true;
      if (!p.Envelope(limits, out)) return Finish(body, p, "", error);
    }
    p.SkipWs();
    if (!p.AtEnd()) {
      p.Syntax("expected the end of the body");
      return Finish(body, p, "", error);
    }
  }
  if (out->events.empty()) {
    error->code = wire::kCodeInvalidPayload;
    error->message = "the body holds no events";
    error->path.clear();
    return false;
  }
  return true;
}

}  // namespace forkd::ingest::http
