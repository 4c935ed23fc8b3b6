// `forkd status --config F [--json]`: what the running forkd's GET
// /api/status says, as a table for a terminal: the instance (version,
// uptime, listen endpoint, events accepted), then one row per destination
// (type, state, delivered, pending, lag in seconds, dead letters, last
// error). --json prints the answer as it came. Reaches forkd through the
// admin address of the same config (tools/admin_client.h).
#pragma once

#include "core/config.h"

namespace forkd::tools {

struct StatusArgs {
  bool json = false;
};

// Exit 0; 2 when forkd cannot be asked (the config has no admin server, or
// nothing answers there); 1 when it answered with an error.
int ShowStatus(const Config& config, const StatusArgs& args);

}  // namespace forkd::tools
