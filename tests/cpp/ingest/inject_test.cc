// Ingest::Inject, the way events already in their stored form (dead letters
// replayed, alert events) reach the log: each is checked as a client's
// event is, since readers do not walk again what this process appended.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "config/config.h"
#include "ingest/ingest.h"
#include "log/log.h"
#include "sinks/registry.h"
#include "test_util.h"
#include "wire/msgpack.h"

namespace forkd::ingest {
namespace {

using test::TempDir;

std::string Stored(const std::string& key) {
  return test::Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.Str("logs");
    w.Str(key);
    w.Nil();
    w.MapHeader(1);
    w.Str("n");
    w.Int(1);
  });
}

}  // namespace

TEST_CASE("Inject appends stored events once they pass the stored-event check, and none of a "
          "call with one that does not",
          "[ingest][inject]") {
  TempDir dir;
  const std::string path = dir.Join("fork.yaml");
  test::WriteFileOrDie(path, "data_dir: " + dir.Join("data") +
                                 "\ndestinations:\n  logs: { type: stdout }\n");
  auto lookup = [](std::string_view type) -> const std::vector<OptionSpec>* {
    const sinks::SinkType* t = sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  auto config = std::make_shared<Config>();
  std::vector<ConfigError> errors;
  REQUIRE(LoadConfig(path, lookup, sinks::SinkTypeNames(), config.get(), &errors));

  log::LogOptions o;
  o.dir = dir.Join("data/wal");
  std::unique_ptr<log::Log> log;
  log::RecoveryInfo info;
  REQUIRE(log::Log::Open(o, &log, &info).ok());

  Ingest ingest(config, log.get(), [](std::string_view) { return UINT64_MAX; });
  REQUIRE(ingest.Recover().ok());
  REQUIRE(ingest.Bind().ok());
  std::thread runner([&] { ingest.Run(); });

  const std::string payload_not_a_map("\x94\x91\xa4logs\xc0\xc0\xa1x", 11);
  Status s = ingest.Inject({Stored("a"), payload_not_a_map}, 10000);
  CHECK(s.code() == Status::Code::kInvalidArgument);
  CHECK_THAT(s.message(), Catch::Contains("injected event 1: stored event: payload must be a map"));
  CHECK(log->durable_next_lsn() == 1);  // not even the valid one before it

  s = ingest.Inject({Stored("a"), Stored("b")}, 10000);
  CHECK(s.ok());
  CHECK(log->durable_next_lsn() == 3);

  ingest.Stop();
  runner.join();
}

}  // namespace forkd::ingest
