// Shared by the transform tests: YAML to msgpack, and a chain parsed from
// YAML with the errors it produced.
#pragma once

#include <yaml-cpp/yaml.h>

#include <map>
#include <string>
#include <vector>

#include "test_util.h"
#include "transforms/transform.h"
#include "transforms/yaml_value.h"

namespace forkd::transforms::test_chain {

using Templates = std::map<std::string, Chain, std::less<>>;

inline std::string PackYaml(const std::string& yaml) {
  wire::Buffer b;
  wire::Writer w(&b);
  std::string error;
  INFO(yaml);
  REQUIRE(YamlToMsgpack(YAML::Load(yaml), &w, &error));
  return std::string(b.view());
}

struct Parsed {
  bool ok = false;
  Chain chain;
  std::vector<ConfigError> errors;
  std::string All() const {
    std::string s;
    for (const auto& e : errors) s += e.ToString() + "\n";
    return s;
  }
};

// Parses `yaml` as the step list of template `t` in fork.yaml.
inline Parsed Parse(const std::string& yaml, const Templates* templates = nullptr) {
  Parsed p;
  ParseContext pc;
  pc.file = "fork.yaml";
  pc.errors = &p.errors;
  pc.templates = templates;
  p.ok = ParseChain(YAML::Load(yaml), "transforms.t", pc, &p.chain);
  return p;
}

}  // namespace forkd::transforms::test_chain
