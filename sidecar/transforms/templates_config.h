// The `transforms` section of the config: named templates, each a list of
// steps that destinations, routes and calls may name. Parsed by
// config/config.cc before the destinations, which use them.
#pragma once

#include <map>
#include <string>

#include "transforms/transform.h"

namespace forkd::transforms {

using Templates = std::map<std::string, Chain, std::less<>>;
// Each template's YAML, for fingerprints (TemplateText).
using TemplateNodes = std::map<std::string, YAML::Node>;

// Reads `transforms` (a map of name: [steps], unset or null: none) into *out,
// in file order: a template may use the templates defined above it.
// pc.templates must point at *out. Problems are added to pc.errors.
void ParseTemplates(const YAML::Node& section, const ParseContext& pc, Templates* out,
                    TemplateNodes* nodes);

// Appends the text of a chain and of every template it names to *out: it
// changes whenever what the chain does does.
void AppendChainText(const YAML::Node& list, const TemplateNodes& nodes, std::string* out);

}  // namespace forkd::transforms
