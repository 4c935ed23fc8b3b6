// `forkd init [--config PATH] [--force]`: a starter configuration.
//   Writes PATH (default ./fork.yaml): a SQLite destination for current
//   state, a JSON Lines file for logs, one route, and comments that point to
//   the docs. An existing file is never replaced without --force. Adds
//   `.fork/` (forkd's data_dir) to the .gitignore beside it, creating it when
//   missing and leaving it alone when the line is there. Prints the commands
//   to run next.
#pragma once

#include <string>

namespace forkd::tools {

// The configuration file subcommands read when --config is not given.
inline constexpr const char* kDefaultConfig = "fork.yaml";

struct InitArgs {
  std::string config;  // empty: kDefaultConfig
  bool force = false;
};

// Exit 0; 1 when the file exists (without --force) or cannot be written.
int Init(const InitArgs& args);

// The starter configuration Init writes.
std::string StarterConfig();

// For subcommands given no --config: sets *path to ./fork.yaml when it
// exists; otherwise returns false with *error saying so and what to run.
bool DefaultConfigPath(std::string* path, std::string* error);

}  // namespace forkd::tools
