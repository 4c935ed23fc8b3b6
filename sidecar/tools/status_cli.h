// `forkd status --config F [--json]`: what the running forkd's GET
// /api/status says, as a table for a terminal: the instance (version,
// uptime, listen endpoint, events accepted), then one row per destination
// (type, state, delivered, pending, lag in seconds, dead letters, last
// error). --json prints the answer as it came. Reaches forkd through the
// admin address of the same config (tools/admin_client.h).
//
// `forkd status --config F --event ID [--json]`: where one event stands
// (GET /api/events/<id>): its log position, then one row per destination:
// delivered (when), pending (state, attempts), dead_lettered (reason),
// filtered (by routes or transforms), or expired. When no forkd runs with
// the config's data_dir, it reads the log directly (without opening it),
// each destination's cursor file and its dead letters, and says so on
// stderr: delivered is then "by" the cursor file's last write, pending is
// "stopped".
#pragma once

#include <string>

#include "config/config.h"

namespace forkd::tools {

struct StatusArgs {
  bool json = false;
  std::string event;  // --event: a receipt id or an idempotency key
};

// Exit 0; 2 when forkd cannot be asked (the config has no admin server, or
// nothing answers there); 1 when it answered with an error.
// With --event: exit 0 when the event was found (or expired), 1 when the id
// is unknown or malformed, 2 when forkd runs but cannot be asked, or the log
// cannot be read.
int ShowStatus(const Config& config, const StatusArgs& args);

}  // namespace forkd::tools
