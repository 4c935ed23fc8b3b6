// The built-in steps' parsers and option tables; one .cc file per step.
// Each parser reads the value under the step's name and returns the compiled
// step, or nullptr after adding errors.
#pragma once

#include "transforms/transform.h"

namespace forkd::transforms {

using StepParser = std::shared_ptr<const Step> (*)(const YAML::Node& args, const std::string& path,
                                                    const ParseContext& pc);

std::shared_ptr<const Step> ParseTimestamp(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseSelect(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseDrop(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseRename(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseSet(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseCast(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseRedact(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseHash(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseFilter(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseValidate(const YAML::Node&, const std::string&, const ParseContext&);
std::shared_ptr<const Step> ParseTemplate(const YAML::Node&, const std::string&, const ParseContext&);

const std::vector<OptionSpec>& TimestampOptions();
const std::vector<OptionSpec>& RedactOptions();
const std::vector<OptionSpec>& HashOptions();
const std::vector<OptionSpec>& ValidateOptions();
const std::vector<OptionSpec>& TemplateOptions();
const std::vector<OptionSpec>& AggregateOptions();

// Reads a list of field paths (or one path) at `path`.
bool ParsePathList(const YAML::Node& node, const std::string& path, const ParseContext& pc,
                   std::vector<Path>* out);
// An interpolated scalar; false (error added) if not a scalar or ${VAR} unset.
bool ScalarText(const YAML::Node& node, const std::string& path, const ParseContext& pc,
                std::string* out);

}  // namespace forkd::transforms
