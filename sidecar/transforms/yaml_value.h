// YAML (and so JSON, which YAML reads) to msgpack, for values written in the
// config (`set: { source: web }`), payloads given to `forkd explain`, and
// the cases of `forkd test`.
//
// Plain scalars are typed as YAML 1.2's core schema types them: null, ~ and
// empty are nil; true/false are booleans; integers and floats are numbers;
// anything else, and every quoted scalar, is a string.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>

#include "wire/msgpack.h"

namespace forkd::transforms {

// Appends `node` as one msgpack value. With `interpolate`, ${ENV} in string
// scalars is replaced. False with *error on an unset variable.
[[nodiscard]] bool YamlToMsgpack(const YAML::Node& node, wire::Writer* w, std::string* error,
                                 bool interpolate = false);

}  // namespace forkd::transforms
