#include "core/options.h"

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>

namespace forkd {
namespace {

const char* TypeName(OptType t) {
  switch (t) {
    case OptType::kString: return "a string";
    case OptType::kInt: return "an integer";
    case OptType::kBool: return "true or false";
    case OptType::kDuration: return "a duration like 250ms, 2s, 1h";
    case OptType::kSize: return "a size like 64KiB, 64MiB";
    case OptType::kEnum: return "one of";
    case OptType::kNode: return "a value";
  }
  return "a value";
}

std::string JoinChoices(const std::vector<std::string_view>& c) {
  std::string s;
  for (size_t i = 0; i < c.size(); ++i) {
    if (i) s += ", ";
    s += c[i];
  }
  return s;
}

size_t Levenshtein(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t sub = prev[j - 1] + (std::tolower(a[i - 1]) == std::tolower(b[j - 1]) ? 0 : 1);
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, sub});
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

// Converts a scalar per `spec` into *v; returns an error message or "".
std::string Convert(const OptionSpec& spec, const std::string& text, Options::Value* v) {
  v->str = text;
  switch (spec.type) {
    case OptType::kString:
    case OptType::kNode:
      return "";
    case OptType::kBool:
      if (text == "true" || text == "yes" || text == "on") {
        v->flag = true;
      } else if (text == "false" || text == "no" || text == "off") {
        v->flag = false;
      } else {
        return std::string("expected ") + TypeName(spec.type) + ", got '" + text + "'";
      }
      return "";
    case OptType::kEnum:
      if (std::find(spec.choices.begin(), spec.choices.end(), text) == spec.choices.end()) {
        std::string m = "expected one of " + JoinChoices(spec.choices) + ", got '" + text + "'";
        std::string dym = DidYouMean(text, spec.choices);
        if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
        return m;
      }
      return "";
    case OptType::kInt: {
      char* end = nullptr;
      errno = 0;
      long long n = std::strtoll(text.c_str(), &end, 10);
      if (text.empty() || *end != 0 || errno == ERANGE) {
        return std::string("expected ") + TypeName(spec.type) + ", got '" + text + "'";
      }
      v->num = n;
      break;
    }
    case OptType::kDuration:
      if (!ParseDurationMs(text, &v->num)) {
        return std::string("expected ") + TypeName(spec.type) + ", got '" + text + "'";
      }
      break;
    case OptType::kSize:
      if (!ParseSize(text, &v->num)) {
        return std::string("expected ") + TypeName(spec.type) + ", got '" + text + "'";
      }
      break;
  }
  if (v->num < spec.min || v->num > spec.max) {
    return "value " + text + " out of range [" + std::to_string(spec.min) + ", " +
           std::to_string(spec.max) + "]";
  }
  return "";
}

}  // namespace

std::string ConfigError::ToString() const {
  std::string s = file;
  if (mark.line > 0) {
    s.append(":").append(std::to_string(mark.line));
    s.append(":").append(std::to_string(mark.column));
  }
  s.append(": ").append(message);
  return s;
}

Mark MarkOf(const YAML::Node& n) {
  const YAML::Mark m = n.Mark();
  if (m.is_null()) return {};
  return {m.line + 1, m.column + 1};
}

bool Options::Has(std::string_view name) const {
  auto it = values.find(name);
  return it != values.end() && it->second.present;
}

const Options::Value& Options::Get(std::string_view name) const {
  static const Value kEmpty;
  auto it = values.find(name);
  return it == values.end() ? kEmpty : it->second;
}

bool Interpolate(const std::string& in, std::string* out, std::string* missing) {
  out->clear();
  size_t i = 0;
  while (i < in.size()) {
    if (in[i] == '$' && i + 1 < in.size() && in[i + 1] == '{') {
      size_t close = in.find('}', i + 2);
      if (close == std::string::npos) {
        out->append(in, i, std::string::npos);
        break;
      }
      std::string expr = in.substr(i + 2, close - i - 2);
      std::string name = expr, def;
      bool has_def = false;
      size_t d = expr.find(":-");
      if (d != std::string::npos) {
        name = expr.substr(0, d);
        def = expr.substr(d + 2);
        has_def = true;
      }
      const char* val = std::getenv(name.c_str());
      if (val != nullptr && *val != 0) {
        out->append(val);
      } else if (has_def) {
        out->append(def);
      } else {
        *missing = name;
        return false;
      }
      i = close + 1;
    } else {
      out->push_back(in[i++]);
    }
  }
  return true;
}

bool ParseDurationMs(const std::string& s, int64_t* ms) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double n = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno == ERANGE || n < 0) return false;
  std::string unit(end);
  double mult;
  if (unit.empty() || unit == "ms") {
    mult = 1;
  } else if (unit == "s") {
    mult = 1000;
  } else if (unit == "m") {
    mult = 60e3;
  } else if (unit == "h") {
    mult = 3600e3;
  } else if (unit == "d") {
    mult = 86400e3;
  } else {
    return false;
  }
  // Also refuses NaN, and what an int64 cannot hold ("1e70s").
  if (!(n * mult < 9.2e18)) return false;
  *ms = static_cast<int64_t>(n * mult);
  return true;
}

bool ParseSize(const std::string& s, int64_t* bytes) {
  if (s.empty()) return false;
  char* end = nullptr;
  errno = 0;
  double n = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || errno == ERANGE || n < 0) return false;
  std::string unit(end);
  static const std::pair<const char*, double> kUnits[] = {
      {"", 1},         {"B", 1},         {"KiB", 1024.0},    {"MiB", 1048576.0},
      {"GiB", 1 << 30}, {"KB", 1e3},      {"MB", 1e6},        {"GB", 1e9},
      {"K", 1024.0},   {"M", 1048576.0}, {"G", 1073741824.0}};
  for (const auto& [u, m] : kUnits) {
    if (unit == u) {
      if (!(n * m < 9.2e18)) return false;  // NaN, or more than an int64 holds
      *bytes = static_cast<int64_t>(n * m);
      return true;
    }
  }
  return false;
}

std::string DidYouMean(std::string_view word, const std::vector<std::string_view>& candidates) {
  std::string_view best;
  size_t best_d = SIZE_MAX;
  for (auto c : candidates) {
    size_t d = Levenshtein(word, c);
    if (d < best_d) {
      best_d = d;
      best = c;
    }
  }
  if (best_d <= std::max<size_t>(2, word.size() / 3)) return std::string(best);
  return "";
}

bool ParseOptions(const YAML::Node& node, const std::vector<OptionSpec>& specs,
                  const std::vector<std::string_view>& also_allowed, const std::string& path,
                  const std::string& file, Options* out, std::vector<ConfigError>* errors,
                  const YAML::Node* marks_from) {
  const size_t before = errors->size();
  auto err = [&](const YAML::Node& at, const std::string& key, const std::string& msg) {
    errors->push_back({file, MarkOf(at), (key.empty() ? path : path + "." + key) + ": " + msg});
  };
  if (!node.IsMap()) {
    err(node, "", "expected a map of options");
    return false;
  }
  std::vector<std::string_view> known;
  for (const auto& s : specs) known.push_back(s.name);
  for (auto a : also_allowed) known.push_back(a);

  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string key = it->first.Scalar();
    if (std::find(known.begin(), known.end(), key) == known.end()) {
      std::string m = "unknown option '" + key + "'";
      std::string dym = DidYouMean(key, known);
      if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
      YAML::Node at = it->first;
      if (marks_from != nullptr && at.Mark().is_null()) {
        for (auto o = marks_from->begin(); o != marks_from->end(); ++o) {
          if (o->first.Scalar() == key) at = o->first;
        }
      }
      err(at, "", m);
    }
  }
  for (const auto& spec : specs) {
    Options::Value v;
    const YAML::Node n = node[std::string(spec.name)];
    if (!n.IsDefined() || n.IsNull()) {
      if (spec.required) {
        err(node, std::string(spec.name), "required option is missing (" + std::string(spec.description) + ")");
        continue;
      }
      if (!spec.default_value.empty()) {
        std::string msg = Convert(spec, std::string(spec.default_value), &v);
        (void)msg;
      }
      out->values[std::string(spec.name)] = std::move(v);
      continue;
    }
    v.present = true;
    v.mark = MarkOf(n);
    v.node = n;
    if (spec.type == OptType::kNode) {
      out->values[std::string(spec.name)] = std::move(v);
      continue;
    }
    if (!n.IsScalar()) {
      std::string expected = TypeName(spec.type);
      if (spec.type == OptType::kEnum) expected += " " + JoinChoices(spec.choices);
      err(n, std::string(spec.name), "expected " + expected + ", got a " +
                                         (n.IsMap() ? "map" : "list"));
      continue;
    }
    std::string text, missing;
    if (!Interpolate(n.Scalar(), &text, &missing)) {
      err(n, std::string(spec.name), "environment variable ${" + missing + "} is not set");
      continue;
    }
    std::string msg = Convert(spec, text, &v);
    if (!msg.empty()) {
      err(n, std::string(spec.name), msg);
      continue;
    }
    out->values[std::string(spec.name)] = std::move(v);
  }
  return errors->size() == before;
}

std::string OptionsMarkdown(const std::vector<OptionSpec>& specs) {
  std::string s = "| option | type | default | description |\n|---|---|---|---|\n";
  for (const auto& o : specs) {
    std::string type = o.type == OptType::kEnum ? JoinChoices(o.choices) : TypeName(o.type);
    std::string def = "—";
    if (o.required) {
      def = "required";
    } else if (!o.default_value.empty()) {
      def.assign("`").append(o.default_value).append("`");
    }
    s.append("| `").append(o.name).append("` | ").append(type).append(" | ").append(def);
    s.append(" | ").append(o.description).append(" |\n");
  }
  return s;
}

}  // namespace forkd

namespace forkd {

bool ValidName(std::string_view s) {
  if (s.empty() || s.size() > 64) return false;
  return std::all_of(s.begin(), s.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
  });
}

Mark MarkOfCheckError(const Options& o, const std::string& error, Mark fallback) {
  const std::string option = error.substr(0, error.find_first_of(".:"));
  const auto v = o.values.find(option);
  if (v == o.values.end() || v->second.mark.line <= 0) return fallback;
  const size_t colon = error.find(": ");
  if (error.size() > option.size() && error[option.size()] == '.' && colon != std::string::npos &&
      v->second.node.IsMap()) {
    // The key may hold dots itself (linger.ms): everything up to ": ".
    const std::string key = error.substr(option.size() + 1, colon - option.size() - 1);
    for (auto it = v->second.node.begin(); it != v->second.node.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == key) return MarkOf(it->first);
    }
  }
  return v->second.mark;
}

}  // namespace forkd
