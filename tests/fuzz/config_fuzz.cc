// A config file's text through LoadConfig with the real sink registry, as
// `forkd check` and `forkd run` load it: any text loads or gives errors that
// name a place in the file; none crashes. In a config that loads, every
// route targets a configured destination.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/fs.h"
#include "fuzz_util.h"
#include "sinks/registry.h"
#include "sources/registry.h"

namespace {
std::string g_path;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const char* base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  std::string tmpl = std::string(base) + "/fork_config_fuzz.XXXXXX";
  fork_fuzz::Require(mkdtemp(tmpl.data()) != nullptr, "a temporary directory");
  fork_fuzz::RemoveAtExit(tmpl);
  g_path = tmpl + "/fork.yaml";
  // ${VAR} in a fuzzed file reads these.
  setenv("FORK_FUZZ_SET", "value", 1);
  unsetenv("FORK_FUZZ_UNSET");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const int fd = ::open(g_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  fork_fuzz::Require(fd >= 0 && forkd::fs::WriteAll(fd, data, size) == 0, "the file is written");
  ::close(fd);
  auto lookup = [](std::string_view type) -> const std::vector<forkd::OptionSpec>* {
    const forkd::sinks::SinkType* t = forkd::sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  forkd::Config config;
  std::vector<forkd::ConfigError> errors;
  const bool ok = forkd::LoadConfig(g_path, lookup, forkd::sinks::SinkTypeNames(), &config,
                                    &errors, forkd::sinks::CheckSinkOptions,
                                    &forkd::sources::SourceOptionsOf,
                                    forkd::sources::SourceTypeNames(),
                                    &forkd::sources::CheckSourceOptions);
  fork_fuzz::Require(ok == errors.empty(), "a config loads exactly when it has no errors");
  for (const auto& e : errors) fork_fuzz::Use(e.ToString());
  if (ok) {
    for (const auto& src : config.sources) {
      for (const auto& to : src.to) {
        fork_fuzz::Require(config.Find(to) != nullptr, "sources name configured destinations");
      }
    }
    for (const auto& r : config.routes) {
      for (const auto& to : r.to) {
        fork_fuzz::Require(config.Find(to) != nullptr, "routes name configured destinations");
      }
    }
  }
  return 0;
}
