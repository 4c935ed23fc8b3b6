#include "core/typed_options.h"

#include <algorithm>

namespace forkd {

bool ParseTypedEntry(const YAML::Node& node, const std::vector<OptionSpec>& common_specs,
                     const TypeOptionsLookup& type_specs, const TypeCheck& check,
                     const std::string& where, const std::string& file, Mark name_mark,
                     Options* common, Options* own, std::vector<ConfigError>* errors) {
  const size_t errors_before = errors->size();
  // The common keys are read first; every key present is allowed there, so
  // an unknown one is reported once, against the type's table.
  std::vector<std::string> present;
  for (auto kv = node.begin(); kv != node.end(); ++kv) present.push_back(kv->first.Scalar());
  const std::vector<std::string_view> present_views(present.begin(), present.end());
  ParseOptions(node, common_specs, present_views, where, file, common, errors);
  const std::string& type = common->Str("type");
  const std::vector<OptionSpec>* specs = type.empty() || !type_specs ? nullptr : type_specs(type);
  if (specs == nullptr) return false;  // the bad type is reported already
  std::vector<std::string_view> common_names;
  for (const auto& s : common_specs) common_names.push_back(s.name);
  YAML::Node own_node(YAML::NodeType::Map);
  for (auto kv = node.begin(); kv != node.end(); ++kv) {
    const std::string k = kv->first.Scalar();
    if (std::find(common_names.begin(), common_names.end(), k) == common_names.end()) {
      own_node[k] = kv->second;
    }
  }
  // Missing required options are reported at the entry's name.
  for (const auto& spec : *specs) {
    const YAML::Node v = node[std::string(spec.name)];
    if (spec.required && (!v.IsDefined() || v.IsNull())) {
      errors->push_back({file, name_mark, where + "." + std::string(spec.name) +
                                              ": required option is missing (" +
                                              std::string(spec.description) + ")"});
    }
  }
  std::vector<OptionSpec> optional_specs = *specs;
  for (auto& spec : optional_specs) spec.required = false;
  ParseOptions(own_node, optional_specs, common_names, where, file, own, errors, &node);
  if (errors->size() != errors_before) return false;
  if (std::string error; check && !check(type, *own, &error)) {
    errors->push_back({file, MarkOfCheckError(*own, error, name_mark), where + "." + error});
    return false;
  }
  return true;
}

}  // namespace forkd
