// The dead-letter reader: one line of dead_letters/<destination>.jsonl as
// `forkd dlq list|show|replay` and the admin API read it. Any line parses or
// says why; a letter that ReplayEvent accepts is an event ingest would take
// and a stored event every log reader accepts, for the destination it names
// and with the letter's id.
#include <string>

#include "config/config.h"
#include "fuzz_util.h"
#include "pipeline/dead_letters.h"
#include "wire/codec.h"

namespace {

using namespace forkd;

Config* MakeConfig() {
  auto* c = new Config();
  DestinationConfig d;
  d.name = "hooks";
  d.type = "file";
  c->destinations.push_back(std::move(d));
  c->templates["clean"] = transforms::Chain{};
  c->max_event = 1 << 16;
  c->limits.max_depth = 16;
  c->limits.max_string = 1 << 16;
  c->limits.max_container = 1 << 16;
  return c;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const Config* config = MakeConfig();
  const std::string line(reinterpret_cast<const char*>(data), size);
  pipeline::ParsedLetter l;
  std::string error;
  if (!pipeline::ParseLetter(line, &l, &error)) {
    fork_fuzz::Require(!error.empty(), "a line refused says why");
    return 0;
  }
  fork_fuzz::Use(l.id);
  fork_fuzz::Use(l.reason);
  fork_fuzz::Use(l.at);
  if (l.raw.empty() || l.id.empty()) return 0;
  std::string event;
  if (!pipeline::ReplayEvent(*config, "hooks", l, &event, &error)) {
    fork_fuzz::Require(!error.empty(), "a letter refused for replay says why");
    return 0;
  }
  const auto* p = reinterpret_cast<const uint8_t*>(event.data());
  wire::EventView v;
  fork_fuzz::Require(wire::CheckEvent(p, event.size(), config->limits, &v, &error),
                     "a replayed event is one ingest takes");
  fork_fuzz::Require(v.dest_count == 1 && v.key == l.id, "a replay goes to its destination, as its id");
  fork_fuzz::Require(wire::CheckStoredEvent(p, event.size(), &error),
                     "a replayed event is a stored event");
  fork_fuzz::WalkStoredEvent(p, event.size());
  return 0;
}
