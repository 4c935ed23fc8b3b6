// `forkd explain` and `forkd test`: dry runs of the config from the command
// line. Both print to stdout and return the process exit code.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace forkd::tools {

struct ExplainArgs {
  std::string payload_json;
  std::vector<std::string> destinations;
  std::string options_json;
  std::string received_at;  // ISO-8601; now when empty
  std::string id;
};

// Prints {"dest": [records...]}; exit 0, or 1 when forkd would refuse the
// event (the code and reason on stderr), or 2 for bad arguments.
int Explain(const Config& config, const ExplainArgs& args);

// Runs the cases of a YAML file against the config; exit 0 when all pass,
// 1 when any fails (with a readable diff), 2 when the file is malformed.
int RunCases(const Config& config, const std::string& cases_path);

}  // namespace forkd::tools
