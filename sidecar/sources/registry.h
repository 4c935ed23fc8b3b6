// The source types forkd knows. Adding a source: its folder, one CMake line,
// one entry in registry.cc.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"
#include "sources/source.h"

namespace forkd::sources {

struct SourceType {
  std::string_view name;
  const std::vector<OptionSpec>& (*options)();
  // Checks beyond the option table; may be null.
  bool (*check)(const Options&, std::string* error) = nullptr;
  // The running source, from its section (checked already).
  std::unique_ptr<Source> (*create)(const SourceContext&) = nullptr;
};

const std::vector<SourceType>& SourceTypes();
const SourceType* FindSourceType(std::string_view name);
std::vector<std::string_view> SourceTypeNames();
// For LoadConfig: the type's option table, nullptr for an unknown type.
const std::vector<OptionSpec>* SourceOptionsOf(std::string_view type);
// For LoadConfig: runs the type's check, if it has one.
bool CheckSourceOptions(std::string_view type, const Options& options, std::string* error);

}  // namespace forkd::sources
