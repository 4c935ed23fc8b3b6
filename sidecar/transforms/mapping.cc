// Schema mapping: select, drop, rename, set and cast.
#include <charconv>
#include <cmath>

#include "transforms/expr.h"
#include "transforms/steps.h"
#include "transforms/yaml_value.h"

namespace forkd::transforms {
namespace {

bool SameParent(const Path& a, const Path& b) {
  if (a.segs.size() != b.segs.size()) return false;
  for (size_t i = 0; i + 1 < a.segs.size(); ++i) {
    if (a.segs[i].key != b.segs[i].key || a.segs[i].index != b.segs[i].index) return false;
  }
  return !a.segs.back().is_index() && !b.segs.back().is_index();
}

class SelectStep final : public Step {
 public:
  explicit SelectStep(std::vector<Path> paths) : paths_(std::move(paths)) {
    for (const Path& p : paths_) top_only_ = top_only_ && p.segs.size() == 1;
  }
  std::string_view kind() const override { return "select"; }
  Outcome Apply(StepContext* ctx) const override {
    Doc& d = *ctx->doc;
    if (top_only_) {
      std::vector<Field>& f = d.fields();
      keep_.clear();
      for (const Path& p : paths_) {
        if (const Field* x = d.Find(p.segs[0].key)) keep_.push_back(*x);
      }
      f.swap(keep_);
      return Outcome::kKeep;
    }
    picked_.clear();
    for (const Path& p : paths_) {
      const RawValue v = d.Lookup(p);
      if (v.found()) picked_.emplace_back(&p, v);
    }
    d.fields().clear();
    for (const auto& [p, v] : picked_) d.Replace(*p, v, /*create=*/true);
    return Outcome::kKeep;
  }

 private:
  std::vector<Path> paths_;
  bool top_only_ = true;
  static thread_local std::vector<Field> keep_;
  static thread_local std::vector<std::pair<const Path*, RawValue>> picked_;
};
thread_local std::vector<Field> SelectStep::keep_;
thread_local std::vector<std::pair<const Path*, RawValue>> SelectStep::picked_;

class DropStep final : public Step {
 public:
  DropStep(std::vector<Path> paths, std::string_view kind) : paths_(std::move(paths)), kind_(kind) {}
  std::string_view kind() const override { return kind_; }
  Outcome Apply(StepContext* ctx) const override {
    for (const Path& p : paths_) ctx->doc->Remove(p);
    return Outcome::kKeep;
  }

 private:
  std::vector<Path> paths_;
  std::string_view kind_;
};

class RenameStep final : public Step {
 public:
  explicit RenameStep(std::vector<std::pair<Path, Path>> pairs) : pairs_(std::move(pairs)) {}
  std::string_view kind() const override { return "rename"; }
  Outcome Apply(StepContext* ctx) const override {
    Doc& d = *ctx->doc;
    for (const auto& [from, to] : pairs_) {
      if (SameParent(from, to)) {
        // Nothing to rename (or a rename to itself): leave the target alone.
        if (!d.Lookup(from).found() || from.segs.back().key == to.segs.back().key) continue;
        if (d.Lookup(to).found()) d.Remove(to);
        d.Rename(from, to.segs.back().key);
        continue;
      }
      const RawValue v = d.Lookup(from);
      if (!v.found()) continue;
      d.Remove(from);  // v stays valid: it points into bytes the doc no longer owns but keeps
      d.Replace(to, v, /*create=*/true);
    }
    return Outcome::kKeep;
  }

 private:
  std::vector<std::pair<Path, Path>> pairs_;
};

class SetStep final : public Step {
 public:
  struct Item {
    Path path;
    std::string constant;  // msgpack, when expr is null
    std::shared_ptr<expr::Program> expr;
  };
  explicit SetStep(std::vector<Item> items) : items_(std::move(items)) {}
  std::string_view kind() const override { return "set"; }
  Outcome Apply(StepContext* ctx) const override {
    Doc& d = *ctx->doc;
    for (const Item& it : items_) {
      RawValue v;
      if (it.expr) {
        const expr::Val x = it.expr->Eval(d, ctx->scratch);
        wire::Buffer& b = buf_;
        b.clear();
        wire::Writer w(&b);
        expr::Write(x, &w);
        v = CopyBuffer(b, &d.arena());
      } else {
        v = RawValue{reinterpret_cast<const uint8_t*>(it.constant.data()),
                     static_cast<uint32_t>(it.constant.size())};
      }
      d.Replace(it.path, v, /*create=*/true);
    }
    return Outcome::kKeep;
  }

 private:
  std::vector<Item> items_;
  static thread_local wire::Buffer buf_;
};
thread_local wire::Buffer SetStep::buf_;

enum class CastType { kInt, kFloat, kString, kBool };

class CastStep final : public Step {
 public:
  explicit CastStep(std::vector<std::pair<Path, CastType>> items) : items_(std::move(items)) {}
  std::string_view kind() const override { return "cast"; }
  Outcome Apply(StepContext* ctx) const override {
    Doc& d = *ctx->doc;
    for (const auto& [path, type] : items_) {
      const RawValue raw = d.Lookup(path);
      if (!raw.found()) continue;
      const expr::Val v = expr::FromRaw(raw);
      RawValue out;
      if (!Cast(v, raw, type, &d.arena(), &out)) {
        std::string shown;
        AppendText(raw.data, &shown);
        if (shown.size() > 64) shown = shown.substr(0, 61) + "...";
        ctx->reason = "cast: " + path.text + ": cannot convert '" + shown + "' to " +
                      TypeName(type);
        return Outcome::kDeadLetter;
      }
      d.Replace(path, out, /*create=*/false);
    }
    return Outcome::kKeep;
  }

  static const char* TypeName(CastType t) {
    switch (t) {
      case CastType::kInt: return "int";
      case CastType::kFloat: return "float";
      case CastType::kString: return "string";
      case CastType::kBool: return "bool";
    }
    return "?";
  }

 private:
  static bool ParseNumber(std::string_view s, bool want_int, int64_t* i, double* f, bool* is_int) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
    if (!s.empty() && s.front() == '+') s.remove_prefix(1);
    if (s.empty()) return false;
    auto r = std::from_chars(s.data(), s.data() + s.size(), *i);
    if (r.ec == std::errc() && r.ptr == s.data() + s.size()) {
      *is_int = true;
      return true;
    }
    auto rf = std::from_chars(s.data(), s.data() + s.size(), *f);
    if (rf.ec != std::errc() || rf.ptr != s.data() + s.size() || !std::isfinite(*f)) return false;
    *is_int = false;
    (void)want_int;
    return true;
  }

  static bool Cast(const expr::Val& v, RawValue raw, CastType t, Arena* arena, RawValue* out) {
    using T = expr::Val::T;
    switch (t) {
      case CastType::kInt: {
        if (v.t == T::kInt) return *out = raw, true;
        if (v.t == T::kBool) return *out = EncodeInt(v.b ? 1 : 0, arena), true;
        double f = v.f;
        int64_t i = 0;
        bool is_int = false;
        if (v.t == T::kStr) {
          if (!ParseNumber(v.s, true, &i, &f, &is_int)) return false;
          if (is_int) return *out = EncodeInt(i, arena), true;
        } else if (v.t != T::kFloat) {
          return false;
        }
        if (!(f >= -9.2e18 && f <= 9.2e18)) return false;
        *out = EncodeInt(static_cast<int64_t>(std::trunc(f)), arena);
        return true;
      }
      case CastType::kFloat: {
        if (v.is_number()) return *out = EncodeDouble(v.number(), arena), true;
        if (v.t == T::kBool) return *out = EncodeDouble(v.b ? 1 : 0, arena), true;
        if (v.t != T::kStr) return false;
        int64_t i;
        double f;
        bool is_int;
        if (!ParseNumber(v.s, false, &i, &f, &is_int)) return false;
        *out = EncodeDouble(is_int ? static_cast<double>(i) : f, arena);
        return true;
      }
      case CastType::kString: {
        if (v.t == T::kStr) return *out = raw, true;
        std::string s;
        AppendText(raw.data, &s);
        *out = EncodeString(s, arena);
        return true;
      }
      case CastType::kBool: {
        if (v.t == T::kBool) return *out = raw, true;
        if (v.is_number()) return *out = EncodeBool(v.number() != 0, arena), true;
        if (v.t == T::kStr) {
          if (v.s == "true" || v.s == "1" || v.s == "yes") return *out = EncodeBool(true, arena), true;
          if (v.s == "false" || v.s == "0" || v.s == "no" || v.s.empty()) {
            return *out = EncodeBool(false, arena), true;
          }
        }
        if (v.t == T::kNull) return *out = EncodeBool(false, arena), true;
        return false;
      }
    }
    return false;
  }

  std::vector<std::pair<Path, CastType>> items_;
};

// For steps written as {path: x, ...}.
bool ForEachEntry(const YAML::Node& args, const std::string& path, const ParseContext& pc,
                  const char* what,
                  const std::function<bool(const YAML::Node& key, const YAML::Node& value,
                                           const std::string& at, Path p)>& fn) {
  if (!args.IsMap() || args.size() == 0) {
    pc.Error(args, path, std::string("expected a non-empty map of ") + what);
    return false;
  }
  bool ok = true;
  for (auto it = args.begin(); it != args.end(); ++it) {
    const std::string at = path + "." + it->first.Scalar();
    Path p;
    if (!ParseFieldPath(it->first, at, pc, &p)) {
      ok = false;
      continue;
    }
    if (!fn(it->first, it->second, at, std::move(p))) ok = false;
  }
  return ok;
}

}  // namespace

std::shared_ptr<const Step> ParseSelect(const YAML::Node& args, const std::string& path,
                                        const ParseContext& pc) {
  std::vector<Path> paths;
  if (!ParsePathList(args, path, pc, &paths)) return nullptr;
  return std::make_shared<SelectStep>(std::move(paths));
}

std::shared_ptr<const Step> ParseDrop(const YAML::Node& args, const std::string& path,
                                      const ParseContext& pc) {
  std::vector<Path> paths;
  if (!ParsePathList(args, path, pc, &paths)) return nullptr;
  return std::make_shared<DropStep>(std::move(paths), "drop");
}

std::shared_ptr<const Step> MakeDropStep(std::vector<Path> paths, std::string_view kind) {
  return std::make_shared<DropStep>(std::move(paths), kind);
}

std::shared_ptr<const Step> ParseRename(const YAML::Node& args, const std::string& path,
                                        const ParseContext& pc) {
  std::vector<std::pair<Path, Path>> pairs;
  const bool ok = ForEachEntry(args, path, pc, "renames (from: to)",
                               [&](const YAML::Node&, const YAML::Node& v, const std::string& at,
                                   Path from) {
                                 Path to;
                                 if (!ParseFieldPath(v, at, pc, &to)) return false;
                                 pairs.emplace_back(std::move(from), std::move(to));
                                 return true;
                               });
  if (!ok) return nullptr;
  return std::make_shared<RenameStep>(std::move(pairs));
}

std::shared_ptr<const Step> ParseSet(const YAML::Node& args, const std::string& path,
                                     const ParseContext& pc) {
  std::vector<SetStep::Item> items;
  const bool ok = ForEachEntry(
      args, path, pc, "fields to values",
      [&](const YAML::Node&, const YAML::Node& v, const std::string& at, Path p) {
        SetStep::Item item;
        item.path = std::move(p);
        if (v.IsMap() && v.size() == 1 && v["expr"].IsDefined()) {
          const YAML::Node e = v["expr"];
          std::string src;
          if (!ScalarText(e, at + ".expr", pc, &src)) return false;
          auto prog = std::make_shared<expr::Program>();
          std::string error;
          size_t col = 0;
          if (!expr::Program::Compile(src, prog.get(), &error, &col)) {
            pc.ErrorAt(MarkInScalar(e, col), at + ".expr",
                       error + " at column " + std::to_string(col + 1));
            return false;
          }
          item.expr = std::move(prog);
        } else {
          wire::Buffer b;
          wire::Writer w(&b);
          std::string error;
          if (!YamlToMsgpack(v, &w, &error, /*interpolate=*/true)) {
            pc.Error(v, at, error);
            return false;
          }
          item.constant.assign(reinterpret_cast<const char*>(b.data()), b.size());
        }
        items.push_back(std::move(item));
        return true;
      });
  if (!ok) return nullptr;
  return std::make_shared<SetStep>(std::move(items));
}

std::shared_ptr<const Step> ParseCast(const YAML::Node& args, const std::string& path,
                                      const ParseContext& pc) {
  std::vector<std::pair<Path, CastType>> items;
  const bool ok = ForEachEntry(
      args, path, pc, "fields to types",
      [&](const YAML::Node&, const YAML::Node& v, const std::string& at, Path p) {
        const std::string t = v.IsScalar() ? v.Scalar() : "";
        CastType ct;
        if (t == "int" || t == "integer") ct = CastType::kInt;
        else if (t == "float" || t == "number" || t == "double") ct = CastType::kFloat;
        else if (t == "string" || t == "str") ct = CastType::kString;
        else if (t == "bool" || t == "boolean") ct = CastType::kBool;
        else {
          std::string m = "expected one of int, float, string, bool, got '" + t + "'";
          // Suggest from the aliases too ('integr' is close to 'integer'), naming the type.
          std::string dym = DidYouMean(t, {"int", "integer", "float", "number", "double",
                                           "string", "str", "bool", "boolean"});
          if (dym == "integer") dym = "int";
          if (dym == "number" || dym == "double") dym = "float";
          if (dym == "str") dym = "string";
          if (dym == "boolean") dym = "bool";
          if (!dym.empty() && !t.empty()) m += " (did you mean '" + dym + "'?)";
          pc.Error(v, at, m);
          return false;
        }
        items.emplace_back(std::move(p), ct);
        return true;
      });
  if (!ok) return nullptr;
  return std::make_shared<CastStep>(std::move(items));
}

}  // namespace forkd::transforms
