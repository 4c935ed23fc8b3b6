// filter and validate: which records go on, and what happens to bad ones.
#include <re2/re2.h>

#include <cmath>

#include "transforms/expr.h"
#include "transforms/steps.h"
#include "transforms/yaml_value.h"

namespace forkd::transforms {
namespace {

class FilterStep final : public Step {
 public:
  explicit FilterStep(std::shared_ptr<expr::Program> p) : prog_(std::move(p)) {}
  std::string_view kind() const override { return "filter"; }
  Outcome Apply(StepContext* ctx) const override {
    return prog_->Test(*ctx->doc, ctx->scratch) ? Outcome::kKeep : Outcome::kDrop;
  }

 private:
  std::shared_ptr<expr::Program> prog_;
};

enum class JsonType { kString, kNumber, kInteger, kBoolean, kObject, kArray, kNull };

const char* JsonTypeName(JsonType t) {
  switch (t) {
    case JsonType::kString: return "string";
    case JsonType::kNumber: return "number";
    case JsonType::kInteger: return "integer";
    case JsonType::kBoolean: return "boolean";
    case JsonType::kObject: return "object";
    case JsonType::kArray: return "array";
    case JsonType::kNull: return "null";
  }
  return "?";
}

const char* KindName(RawValue v) {
  wire::Reader rd(v.data, v.size);
  switch (rd.Peek().kind) {
    case wire::Kind::kNil: return "null";
    case wire::Kind::kBool: return "boolean";
    case wire::Kind::kInt:
    case wire::Kind::kUint: return "integer";
    case wire::Kind::kFloat: return "float";
    case wire::Kind::kStr: return "string";
    case wire::Kind::kBin: return "binary";
    case wire::Kind::kArray: return "array";
    case wire::Kind::kMap: return "object";
    case wire::Kind::kExt: return "extension";
  }
  return "?";
}

bool HasType(RawValue v, JsonType t) {
  wire::Reader rd(v.data, v.size);
  const wire::Value x = rd.Peek();
  switch (t) {
    case JsonType::kString: return x.kind == wire::Kind::kStr;
    case JsonType::kNumber:
      return x.kind == wire::Kind::kInt || x.kind == wire::Kind::kUint || x.kind == wire::Kind::kFloat;
    case JsonType::kInteger:
      return x.kind == wire::Kind::kInt || x.kind == wire::Kind::kUint ||
             (x.kind == wire::Kind::kFloat && std::isfinite(x.f) && x.f == std::trunc(x.f));
    case JsonType::kBoolean: return x.kind == wire::Kind::kBool;
    case JsonType::kObject: return x.kind == wire::Kind::kMap;
    case JsonType::kArray: return x.kind == wire::Kind::kArray;
    case JsonType::kNull: return x.kind == wire::Kind::kNil;
  }
  return false;
}

enum class OnFail { kDeadLetter, kDrop, kFlag };

class ValidateStep final : public Step {
 public:
  struct Range {
    Path path;
    bool has_min = false, has_max = false;
    double min = 0, max = 0;
  };
  struct Enum {
    Path path;
    std::vector<std::string> values;  // msgpack
  };
  struct Pattern {
    Path path;
    std::unique_ptr<RE2> re;
  };
  std::vector<Path> required;
  std::vector<std::pair<Path, JsonType>> types;
  std::vector<Range> ranges;
  std::vector<Enum> enums;
  std::vector<Pattern> patterns;
  OnFail on_fail = OnFail::kDeadLetter;
  Path flag_field;

  std::string_view kind() const override { return "validate"; }

  Outcome Apply(StepContext* ctx) const override {
    const Doc& d = *ctx->doc;
    std::string& why = ctx->reason;
    why.clear();
    auto add = [&](const std::string& path, const std::string& m) {
      why.append(why.empty() ? "validate: " : "; ").append(path).append(": ").append(m);
    };
    for (const Path& p : required) {
      const RawValue v = d.Lookup(p);
      if (!v.found() || v.data[0] == 0xc0) add(p.text, "required field is missing");
    }
    for (const auto& [p, t] : types) {
      const RawValue v = d.Lookup(p);
      if (v.found() && !HasType(v, t)) {
        add(p.text, std::string("expected ") + JsonTypeName(t) + ", got " + KindName(v));
      }
    }
    for (const Range& r : ranges) {
      const RawValue v = d.Lookup(r.path);
      if (!v.found()) continue;
      const expr::Val x = expr::FromRaw(v);
      if (!x.is_number()) {
        add(r.path.text, std::string("expected a number, got ") + KindName(v));
        continue;
      }
      const double n = x.number();
      if ((r.has_min && !(n >= r.min)) || (r.has_max && !(n <= r.max))) {
        std::string shown;
        AppendText(v.data, &shown);
        std::string range = "[";
        if (r.has_min) sinks_number(r.min, &range);
        range += ", ";
        if (r.has_max) sinks_number(r.max, &range);
        range += "]";
        add(r.path.text, shown + " is outside " + range);
      }
    }
    for (const Enum& e : enums) {
      const RawValue v = d.Lookup(e.path);
      if (!v.found()) continue;
      const expr::Val x = expr::FromRaw(v);
      bool ok = false;
      for (const std::string& c : e.values) {
        if (expr::Equal(x, expr::FromRaw(RawValue{reinterpret_cast<const uint8_t*>(c.data()),
                                                   static_cast<uint32_t>(c.size())}))) {
          ok = true;
          break;
        }
      }
      if (!ok) {
        std::string shown;
        AppendText(v.data, &shown);
        add(e.path.text, "'" + shown + "' is not one of the allowed values");
      }
    }
    for (const Pattern& p : patterns) {
      const RawValue v = d.Lookup(p.path);
      if (!v.found()) continue;
      const expr::Val x = expr::FromRaw(v);
      if (x.t != expr::Val::T::kStr) {
        add(p.path.text, std::string("expected a string to match /") + p.re->pattern() + "/, got " +
                             KindName(v));
      } else if (!RE2::PartialMatch(re2::StringPiece(x.s.data(), x.s.size()), *p.re)) {
        add(p.path.text, "does not match /" + p.re->pattern() + "/");
      }
    }
    if (why.empty()) return Outcome::kKeep;
    switch (on_fail) {
      case OnFail::kDrop: return Outcome::kDrop;
      case OnFail::kDeadLetter: return Outcome::kDeadLetter;
      case OnFail::kFlag:
        ctx->doc->Replace(flag_field, EncodeString(why, &ctx->doc->arena()), /*create=*/true);
        why.clear();
        return Outcome::kKeep;
    }
    return Outcome::kKeep;
  }

 private:
  static void sinks_number(double d, std::string* out) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%g", d);
    out->append(buf);
  }
};

bool ParseJsonType(const std::string& s, JsonType* t) {
  if (s == "string") *t = JsonType::kString;
  else if (s == "number" || s == "float") *t = JsonType::kNumber;
  else if (s == "integer" || s == "int") *t = JsonType::kInteger;
  else if (s == "boolean" || s == "bool") *t = JsonType::kBoolean;
  else if (s == "object" || s == "map") *t = JsonType::kObject;
  else if (s == "array" || s == "list") *t = JsonType::kArray;
  else if (s == "null") *t = JsonType::kNull;
  else return false;
  return true;
}

// Calls fn for each entry of an optional map-valued option.
template <typename Fn>
bool EachOf(const Options& o, std::string_view name, const std::string& path,
            const ParseContext& pc, Fn fn) {
  if (!o.Has(name)) return true;
  const YAML::Node m = o.Node(name);
  const std::string at = path + "." + std::string(name);
  if (!m.IsMap()) {
    pc.Error(m, at, "expected a map of field paths");
    return false;
  }
  bool ok = true;
  for (auto it = m.begin(); it != m.end(); ++it) {
    Path p;
    const std::string here = at + "." + it->first.Scalar();
    if (!ParseFieldPath(it->first, here, pc, &p) || !fn(std::move(p), it->second, here)) ok = false;
  }
  return ok;
}

}  // namespace

const std::vector<OptionSpec>& ValidateOptions() {
  static const std::vector<OptionSpec> specs = {
      {"required", OptType::kNode, "", "Field paths that must be present and not null"},
      {"types", OptType::kNode, "",
       "Map of path to type: string, number, integer, boolean, object, array, null"},
      {"ranges", OptType::kNode, "", "Map of path to {min, max} for numbers"},
      {"enums", OptType::kNode, "", "Map of path to the list of allowed values"},
      {"patterns", OptType::kNode, "", "Map of path to an RE2 regular expression strings must match"},
      {"on_fail", OptType::kEnum, "dead_letter",
       "What happens to a record that fails: dead-lettered with the reason, dropped, or passed "
       "with the reason in flag_field",
       false, {"dead_letter", "drop", "flag"}},
      {"flag_field", OptType::kString, "_fork_invalid", "Where on_fail: flag writes the reason"},
  };
  return specs;
}

std::shared_ptr<const Step> ParseFilter(const YAML::Node& args, const std::string& path,
                                        const ParseContext& pc) {
  std::string src;
  if (!ScalarText(args, path, pc, &src)) return nullptr;
  auto prog = std::make_shared<expr::Program>();
  std::string error;
  size_t col = 0;
  if (!expr::Program::Compile(src, prog.get(), &error, &col)) {
    pc.ErrorAt(MarkInScalar(args, col), path, error + " at column " + std::to_string(col + 1));
    return nullptr;
  }
  return std::make_shared<FilterStep>(std::move(prog));
}

std::shared_ptr<const Step> ParseValidate(const YAML::Node& args, const std::string& path,
                                          const ParseContext& pc) {
  Options o;
  if (!ParseOptions(args, ValidateOptions(), {}, path, pc.file, &o, pc.errors)) return nullptr;
  auto v = std::make_shared<ValidateStep>();
  bool ok = true;
  if (o.Has("required")) ok &= ParsePathList(o.Node("required"), path + ".required", pc, &v->required);
  ok &= EachOf(o, "types", path, pc, [&](Path p, const YAML::Node& n, const std::string& at) {
    JsonType t;
    // A plain `null` is read by YAML as a null node, not as the text.
    if (n.IsNull()) {
      v->types.emplace_back(std::move(p), JsonType::kNull);
      return true;
    }
    if (!n.IsScalar() || !ParseJsonType(n.Scalar(), &t)) {
      pc.Error(n, at, "expected one of string, number, integer, boolean, object, array, null");
      return false;
    }
    v->types.emplace_back(std::move(p), t);
    return true;
  });
  ok &= EachOf(o, "ranges", path, pc, [&](Path p, const YAML::Node& n, const std::string& at) {
    ValidateStep::Range r;
    r.path = std::move(p);
    if (!n.IsMap()) {
      pc.Error(n, at, "expected {min, max}");
      return false;
    }
    for (auto it = n.begin(); it != n.end(); ++it) {
      const std::string k = it->first.Scalar();
      double x;
      try {
        x = it->second.as<double>();
      } catch (const YAML::Exception&) {
        pc.Error(it->second, at + "." + k, "expected a number");
        return false;
      }
      if (k == "min") {
        r.has_min = true;
        r.min = x;
      } else if (k == "max") {
        r.has_max = true;
        r.max = x;
      } else {
        pc.Error(it->first, at, "unknown key '" + k + "' (expected min, max)");
        return false;
      }
    }
    v->ranges.push_back(std::move(r));
    return true;
  });
  ok &= EachOf(o, "enums", path, pc, [&](Path p, const YAML::Node& n, const std::string& at) {
    if (!n.IsSequence() || n.size() == 0) {
      pc.Error(n, at, "expected a non-empty list of allowed values");
      return false;
    }
    ValidateStep::Enum e;
    e.path = std::move(p);
    for (const auto& item : n) {
      wire::Buffer b;
      wire::Writer w(&b);
      std::string error;
      if (!YamlToMsgpack(item, &w, &error, true)) {
        pc.Error(item, at, error);
        return false;
      }
      e.values.emplace_back(reinterpret_cast<const char*>(b.data()), b.size());
    }
    v->enums.push_back(std::move(e));
    return true;
  });
  ok &= EachOf(o, "patterns", path, pc, [&](Path p, const YAML::Node& n, const std::string& at) {
    std::string text;
    if (!ScalarText(n, at, pc, &text)) return false;
    RE2::Options ro;
    ro.set_log_errors(false);
    auto re = std::make_unique<RE2>(text, ro);
    if (!re->ok()) {
      pc.Error(n, at, "bad regular expression: " + re->error());
      return false;
    }
    v->patterns.push_back(ValidateStep::Pattern{std::move(p), std::move(re)});
    return true;
  });
  const std::string on_fail = o.Str("on_fail");
  v->on_fail = on_fail == "drop" ? OnFail::kDrop : on_fail == "flag" ? OnFail::kFlag : OnFail::kDeadLetter;
  std::string error;
  if (!ParsePath(o.Str("flag_field"), &v->flag_field, &error)) {
    pc.Error(o.Node("flag_field"), path + ".flag_field", error);
    ok = false;
  }
  if (ok && v->required.empty() && v->types.empty() && v->ranges.empty() && v->enums.empty() &&
      v->patterns.empty()) {
    pc.Error(args, path, "checks nothing: give required, types, ranges, enums or patterns");
    ok = false;
  }
  if (!ok) return nullptr;
  return v;
}

}  // namespace forkd::transforms
