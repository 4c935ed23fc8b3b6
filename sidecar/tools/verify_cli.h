// `forkd verify --config F [--destination NAME]... [--since DURATION]
// [--repair] [--json]`: compares each store with what the retained log says
// it must hold (verify/verify.h) and prints, per destination,
// `NAME: E expected, M missing, X unexpected, D differing` with samples.
// Runs beside a working forkd or without one.
#pragma once

#include <string>
#include <vector>

#include "config/config.h"

namespace forkd::tools {

struct VerifyArgs {
  std::vector<std::string> destinations;
  std::string since;
  bool repair = false;
  bool json = false;
};

// Exit 0 when every destination agrees, 1 when any differs, 2 on a bad
// argument or a store that cannot be read.
int Verify(const Config& config, const VerifyArgs& args);

}  // namespace forkd::tools
