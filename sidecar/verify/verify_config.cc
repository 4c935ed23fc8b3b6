#include "verify/verify_config.h"

#include <algorithm>

namespace forkd::verify {

const std::vector<OptionSpec>& ScheduleOptions() {
  static const std::vector<OptionSpec> specs = {
      {"every", OptType::kDuration, "", "How often forkd runs the check (10m, 1h, 1d)", true, {},
       1000},
      {"destinations", OptType::kNode, "",
       "Destination name or list of names to check; default: every sqlite, postgres, "
       "clickhouse and file destination"},
      {"since", OptType::kDuration, "0",
       "Judge only the events received this long before each run; 0: the whole retained log"},
  };
  return specs;
}

void ParseScheduleConfig(const YAML::Node& node, const std::string& file,
                         const std::vector<std::pair<std::string, std::string>>& destinations,
                         ScheduleConfig* out, std::vector<ConfigError>* errors) {
  if (!node.IsDefined() || node.IsNull()) return;
  Options o;
  if (!ParseOptions(node, ScheduleOptions(), {}, "verify", file, &o, errors)) return;
  ScheduleConfig c;
  c.every_ms = o.Millis("every");
  c.since_ms = o.Millis("since");
  bool ok = true;
  const YAML::Node& names = o.Node("destinations");
  std::vector<YAML::Node> list;
  if (names.IsScalar()) {
    list.push_back(names);
  } else if (names.IsSequence()) {
    for (const auto& n : names) list.push_back(n);
  } else if (names.IsDefined() && !names.IsNull()) {
    errors->push_back({file, MarkOf(names), "verify.destinations: expected a destination name or a list of names"});
    ok = false;
  }
  std::vector<std::string_view> known;
  for (const auto& [name, type] : destinations) known.push_back(name);
  for (const auto& n : list) {
    const std::string name = n.IsScalar() ? n.Scalar() : "";
    auto it = std::find_if(destinations.begin(), destinations.end(),
                           [&](const auto& d) { return d.first == name; });
    if (!n.IsScalar()) {
      errors->push_back({file, MarkOf(n), "verify.destinations: expected a destination name"});
      ok = false;
    } else if (it == destinations.end()) {
      std::string m = "verify.destinations: unknown destination '" + name + "'";
      const std::string dym = DidYouMean(name, known);
      if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
      errors->push_back({file, MarkOf(n), m});
      ok = false;
    } else if (it->second != "sqlite" && it->second != "postgres" && it->second != "clickhouse" &&
               it->second != "file") {
      errors->push_back({file, MarkOf(n),
                         "verify.destinations: '" + name + "' is " + it->second +
                             ": its store cannot be read back (sqlite, postgres, clickhouse and "
                             "file can)"});
      ok = false;
    } else if (std::find(c.destinations.begin(), c.destinations.end(), name) == c.destinations.end()) {
      c.destinations.push_back(name);
    }
  }
  if (ok) *out = std::move(c);
}

}  // namespace forkd::verify
