// `forkd replay --config F --destination NAME (--since DURATION | --from-id ID)`:
// delivers a destination's retained events again, by moving its cursor back
// to the first event received in the last DURATION, or to the event whose
// receipt id (or idempotencyKey) is ID. Through the running forkd's admin
// API (POST /api/replay), which stops that destination's pipeline, moves its
// cursor and starts it again; or straight on the cursor file when no forkd
// runs with this data_dir. The sinks' idempotency (_fork_id) absorbs what
// they already have; a file sink appends the events again.
#pragma once

#include <string>

#include "config/config.h"

namespace forkd::tools {

struct ReplayArgs {
  std::string destination;
  std::string since;  // a duration, or empty
  std::string from_id;
};

// Exit 0; 1 when the id is not in the retained log or the duration reaches
// past its start; 2 for bad arguments, an unknown destination, or no answer
// from the running forkd.
int Replay(const Config& config, const ReplayArgs& args);

}  // namespace forkd::tools
