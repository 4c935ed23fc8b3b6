#include "sources/source_config.h"

#include <algorithm>

#include "core/typed_options.h"

namespace forkd {
namespace {

// `to`: a name or a non-empty list of known destination names. False after
// adding errors.
bool ParseTo(const YAML::Node& n, const std::string& where, const std::string& file,
             const std::vector<std::string>& destinations, std::vector<std::string>* out,
             std::vector<ConfigError>* errors) {
  std::vector<YAML::Node> items;
  if (n.IsScalar()) {
    items.push_back(n);
  } else if (n.IsSequence() && n.size() > 0) {
    for (const auto& item : n) items.push_back(item);
  } else {
    errors->push_back({file, MarkOf(n), where + ": expected a name or a non-empty list of names"});
    return false;
  }
  std::vector<std::string_view> known(destinations.begin(), destinations.end());
  bool ok = true;
  for (const auto& item : items) {
    if (!item.IsScalar()) {
      errors->push_back({file, MarkOf(item), where + ": expected a name"});
      ok = false;
      continue;
    }
    const std::string& name = item.Scalar();
    if (std::find(destinations.begin(), destinations.end(), name) == destinations.end()) {
      std::string m = where + ": unknown destination '" + name + "'";
      const std::string dym = DidYouMean(name, known);
      if (!dym.empty()) m += " (did you mean '" + dym + "'?)";
      errors->push_back({file, MarkOf(item), m});
      ok = false;
      continue;
    }
    out->push_back(name);
  }
  return ok;
}

}  // namespace

const std::vector<OptionSpec>& SourceOptions() {
  static const std::vector<OptionSpec> specs = {
      {"type", OptType::kEnum, "", "The source type", true, {}},
      {"to", OptType::kNode, "",
       "Destination name or list of names its events go to; unset, the routes decide"},
  };
  return specs;
}

void ParseSources(const YAML::Node& sources, const std::string& file,
                  const SourceOptionsLookup& lookup, const std::vector<std::string_view>& types,
                  const SourceCheck& check, const std::vector<std::string>& destinations,
                  std::vector<SourceConfig>* out, std::vector<ConfigError>* errors) {
  if (!sources.IsDefined() || sources.IsNull()) return;
  if (!sources.IsMap()) {
    errors->push_back({file, MarkOf(sources), "sources: expected a map of name: {type: ...}"});
    return;
  }
  std::vector<OptionSpec> common_specs = SourceOptions();
  common_specs[0].choices = types;
  for (auto it = sources.begin(); it != sources.end(); ++it) {
    SourceConfig s;
    s.name = it->first.Scalar();
    s.mark = MarkOf(it->first);
    const std::string where = "sources." + s.name;
    if (!ValidName(s.name)) {
      errors->push_back({file, s.mark, where + ": names are 1-64 letters, digits, _ or -"});
      continue;
    }
    if (!it->second.IsMap()) {
      errors->push_back({file, MarkOf(it->second), where + ": expected a map with a type"});
      continue;
    }
    Options common;
    const bool ok = ParseTypedEntry(it->second, common_specs, lookup, check, where, file, s.mark,
                                    &common, &s.options, errors);
    s.type = common.Str("type");
    if (common.Has("to") &&
        !ParseTo(common.Node("to"), where + ".to", file, destinations, &s.to, errors)) {
      continue;
    }
    if (!ok) continue;
    s.fingerprint = YAML::Dump(it->second);
    out->push_back(std::move(s));
  }
}

}  // namespace forkd
