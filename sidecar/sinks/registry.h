// The sink types forkd knows. Adding a sink: its folder, one CMake line, one
// entry in registry.cc.
#pragma once

#include <memory>
#include <string_view>
#include <vector>

#include "core/options.h"
#include "sinks/sink.h"

namespace forkd::sinks {

struct SinkType {
  std::string_view name;
  const std::vector<OptionSpec>& (*options)();
  std::unique_ptr<Sink> (*create)(const SinkContext&);
};

const std::vector<SinkType>& SinkTypes();
const SinkType* FindSinkType(std::string_view name);
std::vector<std::string_view> SinkTypeNames();

}  // namespace forkd::sinks
