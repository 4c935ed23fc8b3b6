#include "verify/compare.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <utility>
#include <vector>

#include "sinks/common/json.h"

namespace forkd::verify {
namespace {

// A small recursive-descent reader that writes the canonical form as it
// goes; objects are collected and sorted by key.
class Canon {
 public:
  explicit Canon(std::string_view s) : s_(s) {}
  bool Run(std::string* out) {
    if (!Value(out, 0)) return false;
    Ws();
    return i_ == s_.size();
  }

 private:
  void Ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool String(std::string* out) {
    // Copied as it is, escapes included, after one check of its end; two
    // spellings of one string with different escapes are rare enough in
    // forkd's own output (it escapes one way) to be judged different.
    if (i_ >= s_.size() || s_[i_] != '"') return false;
    const size_t start = i_++;
    while (i_ < s_.size() && s_[i_] != '"') {
      if (s_[i_] == '\\') ++i_;
      ++i_;
    }
    if (i_ >= s_.size()) return false;
    ++i_;
    out->append(s_.substr(start, i_ - start));
    return true;
  }
  bool Value(std::string* out, int depth) {
    if (depth > 64) return false;
    Ws();
    if (i_ >= s_.size()) return false;
    const char c = s_[i_];
    if (c == '"') return String(out);
    if (c == '{') {
      ++i_;
      std::vector<std::pair<std::string, std::string>> members;
      Ws();
      if (i_ < s_.size() && s_[i_] == '}') {
        ++i_;
        out->append("{}");
        return true;
      }
      while (true) {
        Ws();
        std::string k, v;
        if (!String(&k)) return false;
        Ws();
        if (i_ >= s_.size() || s_[i_] != ':') return false;
        ++i_;
        if (!Value(&v, depth + 1)) return false;
        members.emplace_back(std::move(k), std::move(v));
        Ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == '}') {
          ++i_;
          break;
        }
        return false;
      }
      std::sort(members.begin(), members.end());
      out->push_back('{');
      for (size_t k = 0; k < members.size(); ++k) {
        if (k) out->push_back(',');
        out->append(members[k].first).push_back(':');
        out->append(members[k].second);
      }
      out->push_back('}');
      return true;
    }
    if (c == '[') {
      ++i_;
      out->push_back('[');
      Ws();
      if (i_ < s_.size() && s_[i_] == ']') {
        ++i_;
        out->push_back(']');
        return true;
      }
      for (bool first = true;; first = false) {
        if (!first) out->push_back(',');
        if (!Value(out, depth + 1)) return false;
        Ws();
        if (i_ < s_.size() && s_[i_] == ',') {
          ++i_;
          continue;
        }
        if (i_ < s_.size() && s_[i_] == ']') {
          ++i_;
          out->push_back(']');
          return true;
        }
        return false;
      }
    }
    for (const char* lit : {"true", "false", "null"}) {
      const std::string_view l(lit);
      if (s_.substr(i_, l.size()) == l) {
        i_ += l.size();
        out->append(l);
        return true;
      }
    }
    // A number.
    const size_t start = i_;
    while (i_ < s_.size() && std::string_view("+-0123456789.eE").find(s_[i_]) != std::string_view::npos) ++i_;
    if (i_ == start) return false;
    const std::string num(s_.substr(start, i_ - start));
    char* end = nullptr;
    const double d = std::strtod(num.c_str(), &end);
    if (end != num.c_str() + num.size()) return false;
    sinks::AppendDouble(d, out);
    return true;
  }

  std::string_view s_;
  size_t i_ = 0;
};

std::optional<double> ParseNumber(std::string_view s) {
  if (s.empty() || s.size() > 64) return std::nullopt;
  const std::string t(s);
  char* end = nullptr;
  const double d = std::strtod(t.c_str(), &end);
  if (end != t.c_str() + t.size()) return std::nullopt;
  return d;
}

std::optional<bool> ParseBool(std::string_view s) {
  if (s == "true" || s == "t" || s == "1") return true;
  if (s == "false" || s == "f" || s == "0") return false;
  return std::nullopt;
}

int Digits(std::string_view s, size_t at, size_t n, bool* ok) {
  int v = 0;
  for (size_t k = 0; k < n; ++k) {
    if (at + k >= s.size() || s[at + k] < '0' || s[at + k] > '9') {
      *ok = false;
      return 0;
    }
    v = v * 10 + (s[at + k] - '0');
  }
  return v;
}

int64_t DaysFromCivil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}

}  // namespace

std::optional<std::string> CanonicalJson(std::string_view text) {
  std::string out;
  Canon c(text);
  if (!c.Run(&out)) return std::nullopt;
  return out;
}

std::optional<int64_t> ParseInstantMs(std::string_view s) {
  if (s.size() < 19 || s.size() > 40) return std::nullopt;
  bool ok = true;
  const int y = Digits(s, 0, 4, &ok);
  const int mo = Digits(s, 5, 2, &ok);
  const int d = Digits(s, 8, 2, &ok);
  const int h = Digits(s, 11, 2, &ok);
  const int mi = Digits(s, 14, 2, &ok);
  const int se = Digits(s, 17, 2, &ok);
  if (!ok || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != ' ') || s[13] != ':' ||
      s[16] != ':' || mo < 1 || mo > 12 || d < 1 || d > 31) {
    return std::nullopt;
  }
  size_t i = 19;
  int64_t ms = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    int64_t scale = 100;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
      ms += (s[i] - '0') * scale;
      scale /= 10;
      ++i;
    }
  }
  // Only UTC is accepted: Z, +00, +00:00, +0000, or nothing.
  const std::string_view zone = s.substr(i);
  if (!(zone.empty() || zone == "Z" || zone == "+00" || zone == "+00:00" || zone == "+0000")) {
    return std::nullopt;
  }
  const int64_t days = DaysFromCivil(y, static_cast<unsigned>(mo), static_cast<unsigned>(d));
  return ((days * 24 + h) * 60 + mi) * 60000 + se * 1000 + ms;
}

bool SameCell(const std::optional<std::string>& expected, const std::optional<std::string_view>& stored) {
  if (!expected.has_value() || !stored.has_value()) return expected.has_value() == stored.has_value();
  const std::string_view e = *expected;
  const std::string_view s = *stored;
  if (e == s) return true;
  if (const auto eb = ParseBool(e); eb && (e == "true" || e == "false")) {
    const auto sb = ParseBool(s);
    return sb && *sb == *eb;
  }
  if (const auto en = ParseNumber(e)) {
    const auto sn = ParseNumber(s);
    if (!sn) return false;
    if (*en == *sn) return true;
    const double scale = std::max(std::fabs(*en), std::fabs(*sn));
    return std::fabs(*en - *sn) <= 1e-9 * scale;
  }
  if (const auto et = ParseInstantMs(e)) {
    const auto st = ParseInstantMs(s);
    if (!st) return false;
    if (*st == *et) return true;
    // A store that keeps whole seconds (ClickHouse's DateTime) drops the
    // milliseconds: the same second, with no fraction stored, matches.
    const bool whole = s.size() < 20 || (s[19] != '.');
    const int64_t floor_s = (*et >= 0 ? *et : *et - 999) / 1000;
    return whole && *st == floor_s * 1000;
  }
  if (!e.empty() && (e.front() == '{' || e.front() == '[')) {
    const auto ej = CanonicalJson(e);
    const auto sj = CanonicalJson(s);
    return ej && sj && *ej == *sj;
  }
  return false;
}

}  // namespace forkd::verify
