#include "pipeline/route_config.h"

#include <cstdlib>
#include <memory>

#include "transforms/expr.h"

namespace forkd {
namespace {

// A name or a non-empty list of names.
bool NameList(const YAML::Node& n, const std::string& where, const transforms::ParseContext& pc,
              std::vector<std::pair<std::string, YAML::Node>>* out) {
  if (n.IsScalar()) {
    out->emplace_back(n.Scalar(), n);
    return true;
  }
  if (!n.IsSequence() || n.size() == 0) {
    pc.Error(n, where, "expected a name or a non-empty list of names");
    return false;
  }
  for (const auto& item : n) {
    if (!item.IsScalar()) {
      pc.Error(item, where, "expected a name");
      return false;
    }
    out->emplace_back(item.Scalar(), item);
  }
  return true;
}

}  // namespace

bool KnownDestination(const std::vector<DestinationConfig>& destinations, const YAML::Node& at,
                      const std::string& where, const std::string& name,
                      const transforms::ParseContext& pc) {
  std::vector<std::string_view> names;
  for (const auto& d : destinations) {
    if (d.name == name) return true;
    names.push_back(d.name);
  }
  std::string m = "unknown destination '" + name + "'";
  const std::string dym = DidYouMean(name, names);
  if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
  pc.Error(at, where, m);
  return false;
}

const std::vector<OptionSpec>& RouteOptions() {
  static const std::vector<OptionSpec> specs = {
      {"when", OptType::kString, "", "Condition on the payload (the expression language); "
                                     "always true when unset"},
      {"to", OptType::kNode, "", "Destination name or list of names", true},
      {"also", OptType::kBool, "false",
       "Applies even when the caller named destinations (adds these to them)"},
      {"transform", OptType::kNode, "",
       "Template name (or list) applied to this route's destinations for matching events"},
      {"rollout", OptType::kNode, "", "Send only a share of matching traffic: {percent, key}"},
      {"shadow", OptType::kBool, "false",
       "Delivers, but is counted as shadow traffic in metrics"},
  };
  return specs;
}

const std::vector<OptionSpec>& RolloutOptions() {
  static const std::vector<OptionSpec> specs = {
      {"percent", OptType::kString, "", "Share of matching events, 0 to 100 (decimals allowed)",
       true},
      {"key", OptType::kString, "",
       "Field whose value picks the share by a stable hash (the same key always gets the same "
       "answer); the event id when unset or missing"},
  };
  return specs;
}

void ParseRoutes(const YAML::Node& rn, const std::vector<DestinationConfig>& destinations,
                 const transforms::Templates& templates, const transforms::ParseContext& pc,
                 std::vector<RouteConfig>* out) {
  const std::string& path = pc.file;
  std::vector<ConfigError>* errors = pc.errors;
  if (!rn.IsDefined() || rn.IsNull()) return;
  if (!rn.IsSequence()) {
    errors->push_back({path, MarkOf(rn), "routes: expected a list of {when, to}"});
    return;
  }
  for (size_t i = 0; i < rn.size(); ++i) {
    const YAML::Node node = rn[i];
    const std::string where = "routes[" + std::to_string(i) + "]";
    Options o;
    if (!ParseOptions(node, RouteOptions(), {}, where, path, &o, errors)) continue;
    RouteConfig r;
    r.mark = MarkOf(node);
    bool ok = true;
    if (o.Has("when")) {
      auto prog = std::make_shared<transforms::expr::Program>();
      std::string error;
      size_t col = 0;
      if (!transforms::expr::Program::Compile(o.Str("when"), prog.get(), &error, &col)) {
        pc.ErrorAt(transforms::MarkInScalar(o.Node("when"), col), where + ".when",
                   error + " at column " + std::to_string(col + 1));
        ok = false;
      } else {
        r.when = std::move(prog);
      }
    }
    std::vector<std::pair<std::string, YAML::Node>> names;
    if (NameList(o.Node("to"), where + ".to", pc, &names)) {
      for (const auto& [n, at] : names) {
        if (KnownDestination(destinations, at, where + ".to", n, pc)) r.to.push_back(n);
        else ok = false;
      }
    } else {
      ok = false;
    }
    r.also = o.Bool("also");
    r.shadow = o.Bool("shadow");
    if (o.Has("transform")) {
      names.clear();
      if (NameList(o.Node("transform"), where + ".transform", pc, &names)) {
        for (const auto& [n, at] : names) {
          auto t = templates.find(n);
          if (t == templates.end()) {
            std::vector<std::string_view> known;
            for (const auto& [k, v] : templates) known.push_back(k);
            std::string m = "unknown transform template '" + n + "'";
            const std::string dym = DidYouMean(n, known);
            if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
            pc.Error(at, where + ".transform", m);
            ok = false;
          } else if (t->second.aggregate) {
            pc.Error(at, where + ".transform",
                     "template '" + n + "' aggregates; an aggregate belongs in a destination's "
                     "transforms, where its state is kept");
            ok = false;
          } else {
            r.transform.push_back(n);
          }
        }
      } else {
        ok = false;
      }
    }
    if (o.Has("rollout")) {
      Options ro;
      const std::string rw = where + ".rollout";
      if (ParseOptions(o.Node("rollout"), RolloutOptions(), {}, rw, path, &ro, errors)) {
        char* end = nullptr;
        const std::string& pt = ro.Str("percent");
        const double pct = std::strtod(pt.c_str(), &end);
        if (pt.empty() || *end != 0 || !(pct >= 0 && pct <= 100)) {
          pc.Error(ro.Node("percent"), rw + ".percent",
                   "expected a number from 0 to 100, got '" + pt + "'");
          ok = false;
        } else {
          r.rollout_bp = static_cast<int64_t>(pct * 100 + 0.5);
        }
        if (ro.Has("key")) {
          r.has_rollout_key =
              transforms::ParseFieldPath(ro.Node("key"), rw + ".key", pc, &r.rollout_key);
          ok = ok && r.has_rollout_key;
        }
      } else {
        ok = false;
      }
    }
    if (ok) out->push_back(std::move(r));
  }
}


}  // namespace forkd
