#include "transforms/templates_config.h"

#include <functional>

namespace forkd::transforms {

void ParseTemplates(const YAML::Node& tn, const ParseContext& pc, Templates* out,
                    TemplateNodes* nodes) {
  if (!tn.IsDefined() || tn.IsNull()) return;
  if (!tn.IsMap()) {
    pc.errors->push_back({pc.file, MarkOf(tn), "transforms: expected a map of name: [steps]"});
    return;
  }
  for (auto it = tn.begin(); it != tn.end(); ++it) {
    const std::string name = it->first.Scalar();
    if (!ValidName(name)) {
      pc.errors->push_back({pc.file, MarkOf(it->first),
                            "transforms." + name + ": names are 1-64 letters, digits, _ or -"});
      continue;
    }
    Chain chain;
    if (ParseChain(it->second, "transforms." + name, pc, &chain)) {
      out->emplace(name, std::move(chain));
      (*nodes)[name] = it->second;
    }
  }
}

void AppendChainText(const YAML::Node& list, const TemplateNodes& nodes, std::string* out) {
  std::function<void(const YAML::Node&, int)> text = [&](const YAML::Node& l, int depth) {
    out->append(YAML::Dump(l)).append("\n");
    if (!l.IsSequence() || depth > 16) return;
    for (const auto& item : l) {
      if (!item.IsScalar()) continue;
      auto t = nodes.find(item.Scalar());
      if (t != nodes.end()) text(t->second, depth + 1);
    }
  };
  text(list, 0);
}

}  // namespace forkd::transforms
