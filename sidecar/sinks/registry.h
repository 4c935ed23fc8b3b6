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
  // Checks beyond the option table, for `forkd check`; may be null.
  bool (*check)(const Options&, std::string* error) = nullptr;
  // For `forkd check`: looks at the store without changing it, where that
  // is cheap and local; *note says how the destination will write, false
  // with *error when it cannot as configured. May be null.
  bool (*inspect)(const SinkContext&, std::string* note, std::string* error) = nullptr;
};

const std::vector<SinkType>& SinkTypes();
const SinkType* FindSinkType(std::string_view name);
std::vector<std::string_view> SinkTypeNames();
// For LoadConfig: runs the type's check, if it has one.
bool CheckSinkOptions(std::string_view type, const Options& options, std::string* error);

}  // namespace forkd::sinks
