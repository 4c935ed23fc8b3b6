#include "transforms/yaml_value.h"

#include <charconv>
#include <cmath>

#include "core/options.h"

namespace forkd::transforms {
namespace {

void PlainScalar(const std::string& s, wire::Writer* w) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") return w->Nil();
  if (s == "true" || s == "True" || s == "TRUE") return w->Bool(true);
  if (s == "false" || s == "False" || s == "FALSE") return w->Bool(false);
  const char* b = s.data();
  const char* e = b + s.size();
  const char* nb = (*b == '+') ? b + 1 : b;
  int64_t i;
  auto r = std::from_chars(nb, e, i);
  if (r.ec == std::errc() && r.ptr == e) return w->Int(i);
  if (r.ec == std::errc::result_out_of_range && r.ptr == e && *nb != '-') {
    uint64_t u;
    auto ru = std::from_chars(nb, e, u);
    if (ru.ec == std::errc() && ru.ptr == e) return w->Uint(u);
  }
  double d;
  auto rd = std::from_chars(nb, e, d);
  if (rd.ec == std::errc() && rd.ptr == e && std::isfinite(d)) return w->Double(d);
  if (s == ".inf" || s == ".Inf") return w->Double(HUGE_VAL);
  if (s == "-.inf" || s == "-.Inf") return w->Double(-HUGE_VAL);
  if (s == ".nan" || s == ".NaN") return w->Double(NAN);
  w->Str(s);
}

}  // namespace

bool YamlToMsgpack(const YAML::Node& node, wire::Writer* w, std::string* error,
                   bool interpolate) {
  switch (node.Type()) {
    case YAML::NodeType::Undefined:
    case YAML::NodeType::Null: w->Nil(); return true;
    case YAML::NodeType::Scalar: {
      std::string text = node.Scalar();
      const bool quoted = node.Tag() == "!";
      if (interpolate && text.find("${") != std::string::npos) {
        std::string out, missing;
        if (!Interpolate(text, &out, &missing)) {
          *error = "environment variable ${" + missing + "} is not set";
          return false;
        }
        text = std::move(out);
      }
      if (quoted) {
        w->Str(text);
      } else {
        PlainScalar(text, w);
      }
      return true;
    }
    case YAML::NodeType::Sequence:
      w->ArrayHeader(static_cast<uint32_t>(node.size()));
      for (const auto& item : node) {
        if (!YamlToMsgpack(item, w, error, interpolate)) return false;
      }
      return true;
    case YAML::NodeType::Map:
      w->MapHeader(static_cast<uint32_t>(node.size()));
      for (auto it = node.begin(); it != node.end(); ++it) {
        w->Str(it->first.Scalar());
        if (!YamlToMsgpack(it->second, w, error, interpolate)) return false;
      }
      return true;
  }
  return true;
}

}  // namespace forkd::transforms
