// Helpers shared by the C++ unit tests: a temporary directory per test, whole
// file reads and writes, a Reporter that records what it is told, msgpack
// builders, and a guard that clears injected file-system faults.
#pragma once

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/fs.h"
#include "log/log_reader.h"
#include "wire/msgpack.h"

namespace forkd::test {

// A fresh directory under /tmp, removed with everything in it on destruction.
class TempDir {
 public:
  TempDir() {
    char tmpl[] = "/tmp/fork_test.XXXXXX";
    const char* p = ::mkdtemp(tmpl);
    REQUIRE(p != nullptr);
    path_ = p;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Join(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

inline std::string ReadFileOrDie(const std::string& path) {
  std::string out;
  Status s = fs::ReadFile(path, &out);
  INFO(path << ": " << s.ToString());
  REQUIRE(s.ok());
  return out;
}

inline void WriteFileOrDie(const std::string& path, const std::string& bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  REQUIRE(fd >= 0);
  const ssize_t w = ::write(fd, bytes.data(), bytes.size());
  ::close(fd);
  REQUIRE(w == static_cast<ssize_t>(bytes.size()));
}

inline bool FileExists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

inline uint64_t FileSizeOf(const std::string& path) {
  struct stat st;
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_size);
}

// Names in `dir`, sorted.
inline std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    names.push_back(e.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  return names;
}

// Records every corruption report.
class CollectingReporter : public log::Reporter {
 public:
  struct Drop {
    uint64_t offset;
    size_t bytes;
    std::string reason;
  };
  void Corruption(uint64_t offset, size_t bytes, const std::string& reason) override {
    drops.push_back({offset, bytes, reason});
  }
  uint64_t DroppedBytes() const {
    uint64_t n = 0;
    for (const auto& d : drops) n += d.bytes;
    return n;
  }
  std::string Describe() const {
    std::string s;
    for (const auto& d : drops) {
      s += "[" + std::to_string(d.offset) + "+" + std::to_string(d.bytes) + " " + d.reason + "]";
    }
    return s;
  }
  std::vector<Drop> drops;
};

// Clears injected faults when the test leaves its scope, also on failure, so
// one test's fault never leaks into the next.
class FaultGuard {
 public:
  FaultGuard() { fs::ClearFaults(); }
  ~FaultGuard() { fs::ClearFaults(); }
};

// msgpack bytes produced by `build`.
inline std::string Pack(const std::function<void(wire::Writer&)>& build) {
  wire::Buffer b;
  wire::Writer w(&b);
  build(w);
  return std::string(b.view());
}

inline const uint8_t* U8(const std::string& s) {
  return reinterpret_cast<const uint8_t*>(s.data());
}

// A deterministic pseudo-random generator (xorshift64*), so failures repeat.
class Rng {
 public:
  explicit Rng(uint64_t seed) : s_(seed ? seed : 1) {}
  uint64_t Next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 2685821657736338717ull;
  }
  // Uniform in [0, n).
  uint64_t Uniform(uint64_t n) { return Next() % n; }
  std::string Bytes(size_t n) {
    std::string s(n, '\0');
    for (auto& c : s) c = static_cast<char>(Next() >> 56);
    return s;
  }

 private:
  uint64_t s_;
};

// A strict RFC 8259 checker: true if `text` is exactly one JSON value
// (surrounding whitespace allowed) in valid UTF-8. With `decoded`, a
// top-level string's value is returned unescaped.
class JsonChecker {
 public:
  static bool Valid(std::string_view text, std::string* why = nullptr,
                    std::string* decoded = nullptr) {
    JsonChecker c(text);
    c.Ws();
    if (!c.Value(0, decoded)) {
      if (why != nullptr) *why = c.err_ + " at byte " + std::to_string(c.p_);
      return false;
    }
    c.Ws();
    if (c.p_ != text.size()) {
      if (why != nullptr) *why = "trailing bytes at " + std::to_string(c.p_);
      return false;
    }
    return true;
  }
  // True if `s` is valid UTF-8 (no overlongs, surrogates or values past U+10FFFF).
  static bool Utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
      const auto c = static_cast<uint8_t>(s[i]);
      size_t n;
      uint32_t cp;
      if (c < 0x80) {
        ++i;
        continue;
      } else if ((c & 0xe0) == 0xc0) {
        n = 1;
        cp = c & 0x1f;
      } else if ((c & 0xf0) == 0xe0) {
        n = 2;
        cp = c & 0x0f;
      } else if ((c & 0xf8) == 0xf0) {
        n = 3;
        cp = c & 0x07;
      } else {
        return false;
      }
      for (size_t k = 1; k <= n; ++k) {
        if (i + k >= s.size()) return false;
        const auto b = static_cast<uint8_t>(s[i + k]);
        if ((b & 0xc0) != 0x80) return false;
        cp = (cp << 6) | (b & 0x3f);
      }
      const uint32_t min = n == 1 ? 0x80 : n == 2 ? 0x800 : 0x10000;
      if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
      i += n + 1;
    }
    return true;
  }

 private:
  explicit JsonChecker(std::string_view t) : t_(t) {}
  bool Fail(const char* e) {
    err_ = e;
    return false;
  }
  void Ws() {
    while (p_ < t_.size() && (t_[p_] == ' ' || t_[p_] == '\t' || t_[p_] == '\n' || t_[p_] == '\r'))
      ++p_;
  }
  bool Lit(const char* w) {
    const size_t n = std::strlen(w);
    if (t_.substr(p_, n) != w) return Fail("bad literal");
    p_ += n;
    return true;
  }
  bool Value(int depth, std::string* decoded) {
    if (depth > 1000) return Fail("too deep");
    if (p_ >= t_.size()) return Fail("value expected");
    const char c = t_[p_];
    if (c == '{') {
      ++p_;
      Ws();
      if (p_ < t_.size() && t_[p_] == '}') return ++p_, true;
      while (true) {
        Ws();
        if (p_ >= t_.size() || t_[p_] != '"') return Fail("object key expected");
        if (!String(nullptr)) return false;
        Ws();
        if (p_ >= t_.size() || t_[p_] != ':') return Fail("':' expected");
        ++p_;
        Ws();
        if (!Value(depth + 1, nullptr)) return false;
        Ws();
        if (p_ < t_.size() && t_[p_] == ',') {
          ++p_;
          continue;
        }
        if (p_ < t_.size() && t_[p_] == '}') return ++p_, true;
        return Fail("',' or '}' expected");
      }
    }
    if (c == '[') {
      ++p_;
      Ws();
      if (p_ < t_.size() && t_[p_] == ']') return ++p_, true;
      while (true) {
        Ws();
        if (!Value(depth + 1, nullptr)) return false;
        Ws();
        if (p_ < t_.size() && t_[p_] == ',') {
          ++p_;
          continue;
        }
        if (p_ < t_.size() && t_[p_] == ']') return ++p_, true;
        return Fail("',' or ']' expected");
      }
    }
    if (c == '"') return String(decoded);
    if (c == 't') return Lit("true");
    if (c == 'f') return Lit("false");
    if (c == 'n') return Lit("null");
    return Number();
  }
  bool Digits() {
    const size_t s = p_;
    while (p_ < t_.size() && t_[p_] >= '0' && t_[p_] <= '9') ++p_;
    return p_ > s;
  }
  bool Number() {
    if (p_ < t_.size() && t_[p_] == '-') ++p_;
    if (p_ < t_.size() && t_[p_] == '0') {
      ++p_;
    } else if (!Digits()) {
      return Fail("number expected");
    }
    if (p_ < t_.size() && t_[p_] == '.') {
      ++p_;
      if (!Digits()) return Fail("fraction digits expected");
    }
    if (p_ < t_.size() && (t_[p_] == 'e' || t_[p_] == 'E')) {
      ++p_;
      if (p_ < t_.size() && (t_[p_] == '+' || t_[p_] == '-')) ++p_;
      if (!Digits()) return Fail("exponent digits expected");
    }
    return true;
  }
  static void PutUtf8(uint32_t cp, std::string* out) {
    if (cp < 0x80) {
      out->push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out->push_back(static_cast<char>(0xc0 | (cp >> 6)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else if (cp < 0x10000) {
      out->push_back(static_cast<char>(0xe0 | (cp >> 12)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    } else {
      out->push_back(static_cast<char>(0xf0 | (cp >> 18)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3f)));
      out->push_back(static_cast<char>(0x80 | (cp & 0x3f)));
    }
  }
  bool String(std::string* decoded) {
    ++p_;  // the quote
    const size_t start = p_;
    std::string out;
    while (true) {
      if (p_ >= t_.size()) return Fail("unterminated string");
      const auto c = static_cast<uint8_t>(t_[p_]);
      if (c == '"') break;
      if (c < 0x20) return Fail("raw control character in string");
      if (c == '\\') {
        if (p_ + 1 >= t_.size()) return Fail("unterminated escape");
        const char e = t_[p_ + 1];
        p_ += 2;
        switch (e) {
          case '"':
            out.push_back('"');
            break;
          case '\\':
            out.push_back('\\');
            break;
          case '/':
            out.push_back('/');
            break;
          case 'b':
            out.push_back('\b');
            break;
          case 'f':
            out.push_back('\f');
            break;
          case 'n':
            out.push_back('\n');
            break;
          case 'r':
            out.push_back('\r');
            break;
          case 't':
            out.push_back('\t');
            break;
          case 'u': {
            if (p_ + 4 > t_.size()) return Fail("short \\u escape");
            uint32_t cp = 0;
            for (int k = 0; k < 4; ++k) {
              const char h = t_[p_ + k];
              cp <<= 4;
              if (h >= '0' && h <= '9')
                cp |= h - '0';
              else if (h >= 'a' && h <= 'f')
                cp |= h - 'a' + 10;
              else if (h >= 'A' && h <= 'F')
                cp |= h - 'A' + 10;
              else
                return Fail("bad hex digit");
            }
            p_ += 4;
            PutUtf8(cp, &out);
            break;
          }
          default:
            return Fail("bad escape");
        }
        continue;
      }
      out.push_back(static_cast<char>(c));
      ++p_;
    }
    if (!Utf8(t_.substr(start, p_ - start))) return Fail("invalid UTF-8 in string");
    ++p_;
    if (decoded != nullptr) *decoded = std::move(out);
    return true;
  }

  std::string_view t_;
  size_t p_ = 0;
  std::string err_;
};

}  // namespace forkd::test
