#include "sources/source_config.h"

#include <algorithm>

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
  std::vector<std::string_view> common_names;
  for (const auto& s : common_specs) common_names.push_back(s.name);
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
    // The keys every source has are read here; the rest belong to the type
    // and are checked against its table (unknown keys reported once).
    std::vector<std::string> present;
    for (auto kv = it->second.begin(); kv != it->second.end(); ++kv) {
      present.push_back(kv->first.Scalar());
    }
    std::vector<std::string_view> present_views(present.begin(), present.end());
    const size_t errors_before = errors->size();
    Options common;
    ParseOptions(it->second, common_specs, present_views, where, file, &common, errors);
    s.type = common.Str("type");
    if (common.Has("to")) {
      ParseTo(common.Node("to"), where + ".to", file, destinations, &s.to, errors);
    }
    const std::vector<OptionSpec>* specs =
        s.type.empty() || !lookup ? nullptr : lookup(s.type);
    if (specs == nullptr) continue;  // the bad type is reported already
    YAML::Node own(YAML::NodeType::Map);
    for (auto kv = it->second.begin(); kv != it->second.end(); ++kv) {
      const std::string k = kv->first.Scalar();
      if (std::find(common_names.begin(), common_names.end(), k) == common_names.end()) {
        own[k] = kv->second;
      }
    }
    // Missing required options are reported at the source's name.
    for (const auto& spec : *specs) {
      const YAML::Node v = it->second[std::string(spec.name)];
      if (spec.required && (!v.IsDefined() || v.IsNull())) {
        errors->push_back({file, s.mark, where + "." + std::string(spec.name) +
                                             ": required option is missing (" +
                                             std::string(spec.description) + ")"});
      }
    }
    std::vector<OptionSpec> optional_specs = *specs;
    for (auto& spec : optional_specs) spec.required = false;
    ParseOptions(own, optional_specs, common_names, where, file, &s.options, errors,
                 &it->second);
    if (errors->size() != errors_before) continue;
    if (std::string error; check && !check(s.type, s.options, &error)) {
      // Reported at the option it names ("options.x: ..." -> options).
      const Mark mark = MarkOfCheckError(s.options, error, s.mark);
      errors->push_back({file, mark, where + "." + error});
      continue;
    }
    s.fingerprint = YAML::Dump(it->second);
    out->push_back(std::move(s));
  }
}

}  // namespace forkd
