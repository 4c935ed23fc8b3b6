// The `routes` section of the config (and `unmatched`): which destinations
// an event that names none goes to. Parsed by config/config.cc after the
// destinations and templates, which routes name.
#pragma once

#include <string>
#include <vector>

#include "core/options.h"
#include "pipeline/destination_config.h"
#include "pipeline/router.h"
#include "transforms/templates_config.h"
#include "transforms/transform.h"

namespace forkd {

const std::vector<OptionSpec>& RouteOptions();
const std::vector<OptionSpec>& RolloutOptions();

// Checks that `name` is one of `destinations`; false after adding
// "<where>: unknown destination 'x' (did you mean 'y'?)" at `at`.
bool KnownDestination(const std::vector<DestinationConfig>& destinations, const YAML::Node& at,
                      const std::string& where, const std::string& name,
                      const transforms::ParseContext& pc);

// Reads `routes` (a list of {when, to, ...}; unset or null: none) into *out;
// a route with an error is left out. Problems are added to pc.errors.
void ParseRoutes(const YAML::Node& routes, const std::vector<DestinationConfig>& destinations,
                 const transforms::Templates& templates, const transforms::ParseContext& pc,
                 std::vector<RouteConfig>* out);

}  // namespace forkd
