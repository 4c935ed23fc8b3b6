// One entry of a section whose entries are typed components
// (`destinations.<name>`, `sources.<name>`): `name: {type: T, ...}`, where
// some keys every component of the section has (its table, `type` first)
// and the rest belong to type T (T's table). Shared by the sections so each
// reports the same way: unknown keys once, a missing required option of the
// type at the entry's name, the type's own check at the option it names.
#pragma once

#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "core/options.h"

namespace forkd {

// A type's option table; nullptr for an unknown type.
using TypeOptionsLookup = std::function<const std::vector<OptionSpec>*(std::string_view type)>;
// A type's own check beyond its table: false with *error as "option: ..."
// or "option.key: ...".
using TypeCheck =
    std::function<bool(std::string_view type, const Options& options, std::string* error)>;

// Parses `node` (a map) into *common (`common_specs`, whose first entry is
// `type`) and *own (the type's table, keys outside `common_specs`).
// `where` is "destinations.logs", `name_mark` where the name is. Returns
// false when it added an error or the type is unknown (reported by the
// common table's choices).
bool ParseTypedEntry(const YAML::Node& node, const std::vector<OptionSpec>& common_specs,
                     const TypeOptionsLookup& type_specs, const TypeCheck& check,
                     const std::string& where, const std::string& file, Mark name_mark,
                     Options* common, Options* own, std::vector<ConfigError>* errors);

}  // namespace forkd
