// The `sources` section: each source's type picks its options table, `to`
// names known destinations, and every mistake is reported at file:line:col.
#include "sources/source_config.h"

#include "config/config.h"
#include "sinks/registry.h"
#include "sources/kafka/kafka_source_options.h"
#include "sources/registry.h"
#include "test_util.h"

namespace forkd {
namespace {

using test::TempDir;

struct Loaded {
  bool ok = false;
  std::string path;
  Config config;
  std::vector<ConfigError> errors;
  std::string All() const {
    std::string s;
    for (const auto& e : errors) s += e.ToString() + "\n";
    return s;
  }
};

// Loads `yaml` with the real sink and source registries, as forkd's main does.
Loaded Load(const TempDir& dir, const std::string& yaml) {
  Loaded l;
  l.path = dir.Join("fork.yaml");
  test::WriteFileOrDie(l.path, yaml);
  auto sinks = [](std::string_view type) -> const std::vector<OptionSpec>* {
    const sinks::SinkType* t = sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  l.ok = LoadConfig(l.path, sinks, sinks::SinkTypeNames(), &l.config, &l.errors,
                    &sinks::CheckSinkOptions, &sources::SourceOptionsOf,
                    sources::SourceTypeNames(), &sources::CheckSourceOptions);
  return l;
}

void ExpectOneError(const Loaded& l, int line, int col, const std::string& message) {
  INFO(l.All());
  CHECK_FALSE(l.ok);
  REQUIRE(l.errors.size() == 1);
  CHECK(l.errors[0].ToString() ==
        l.path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + message);
}

const char* kDestinations =
    "destinations:\n"
    "  store: { type: file, path: out/store.jsonl }\n"
    "  ticker: { type: stdout }\n";

}  // namespace

TEST_CASE("a kafka source is parsed into Config::sources", "[config][sources]") {
  TempDir dir;
  const Loaded l = Load(dir, std::string(kDestinations) +
                                 "sources:\n"
                                 "  bus: { type: kafka, brokers: \"127.0.0.1:9092\", topic: "
                                 "orders, group: fork-hub, to: [store, ticker], options: { "
                                 "\"fetch.min.bytes\": 1 } }\n"
                                 "  audit:\n"
                                 "    type: kafka\n"
                                 "    brokers: k1:9092, k2:9093\n"
                                 "    topic: audit\n"
                                 "    group: g\n"
                                 "    start: latest\n");
  INFO(l.All());
  REQUIRE(l.ok);
  REQUIRE(l.config.sources.size() == 2);
  const SourceConfig& bus = l.config.sources[0];
  CHECK(bus.name == "bus");
  CHECK(bus.type == "kafka");
  CHECK(bus.mark.line == 5);
  CHECK(bus.mark.column == 3);
  CHECK(bus.to == std::vector<std::string>{"store", "ticker"});
  CHECK(bus.options.Str("brokers") == "127.0.0.1:9092");
  CHECK(bus.options.Str("topic") == "orders");
  CHECK(bus.options.Str("group") == "fork-hub");
  CHECK(bus.options.Str("start") == "earliest");
  CHECK_FALSE(bus.options.Has("start"));
  CHECK(bus.options.Node("options")["fetch.min.bytes"].Scalar() == "1");
  CHECK_FALSE(bus.options.Has("to"));
  CHECK_FALSE(bus.fingerprint.empty());
  const SourceConfig& audit = l.config.sources[1];
  CHECK(audit.name == "audit");
  CHECK(audit.to.empty());  // the routes decide
  CHECK(audit.options.Str("start") == "latest");
  CHECK(audit.options.Str("brokers") == "k1:9092, k2:9093");
  CHECK(audit.fingerprint != bus.fingerprint);
}

TEST_CASE("no sources section: none", "[config][sources]") {
  TempDir dir;
  const Loaded l = Load(dir, kDestinations);
  INFO(l.All());
  REQUIRE(l.ok);
  CHECK(l.config.sources.empty());
}

TEST_CASE("mistakes in sources are reported where they are", "[config][sources]") {
  TempDir dir;
  const std::string head = std::string(kDestinations) + "sources:\n";
  SECTION("an unknown type") {
    const Loaded l = Load(dir, head +
                                   "  bus:\n"
                                   "    type: kafak\n"
                                   "    topic: orders\n");
    ExpectOneError(l, 6, 11,
                   "sources.bus.type: expected one of kafka, got 'kafak' (did you mean "
                   "'kafka'?)");
  }
  SECTION("an unknown key") {
    const Loaded l = Load(dir, head +
                                   "  bus:\n"
                                   "    type: kafka\n"
                                   "    brokers: b:9092\n"
                                   "    topic: orders\n"
                                   "    group: g\n"
                                   "    topci: orders\n");
    ExpectOneError(l, 10, 5, "sources.bus: unknown option 'topci' (did you mean 'topic'?)");
  }
  SECTION("a missing required option, at the source's name") {
    const Loaded l = Load(dir, head +
                                   "  bus:\n"
                                   "    type: kafka\n"
                                   "    brokers: b:9092\n"
                                   "    topic: orders\n");
    ExpectOneError(l, 5, 3,
                   "sources.bus.group: required option is missing (The consumer group id: its "
                   "committed offsets say where reading resumes)");
  }
  SECTION("to naming an unknown destination") {
    const Loaded l = Load(dir, head +
                                   "  bus:\n"
                                   "    type: kafka\n"
                                   "    brokers: b:9092\n"
                                   "    topic: orders\n"
                                   "    group: g\n"
                                   "    to: [store, tikcer]\n");
    ExpectOneError(l, 10, 17,
                   "sources.bus.to: unknown destination 'tikcer' (did you mean 'ticker'?)");
  }
  SECTION("an empty to") {
    const Loaded l = Load(dir, head + "  bus: { type: kafka, brokers: b:9092, topic: t, group: "
                                      "g, to: [] }\n");
    ExpectOneError(l, 5, 64, "sources.bus.to: expected a name or a non-empty list of names");
  }
  SECTION("a bad name") {
    const Loaded l = Load(dir, head + "  bad.name: { type: kafka, brokers: b:9092, topic: t, "
                                      "group: g }\n");
    ExpectOneError(l, 5, 3, "sources.bad.name: names are 1-64 letters, digits, _ or -");
  }
  SECTION("a broker without a port") {
    const Loaded l = Load(dir, head + "  bus: { type: kafka, brokers: \"a:9092,b\", topic: t, "
                                      "group: g }\n");
    ExpectOneError(l, 5, 32,
                   "sources.bus.brokers: 'b' is not host:port");
  }
  SECTION("a librdkafka property that is not a string") {
    const Loaded l = Load(dir, head + "  bus: { type: kafka, brokers: b:9092, topic: t, "
                                      "group: g, options: { x: [1] } }\n");
    ExpectOneError(l, 5, 71,
                   "sources.bus.options.x: expected a scalar value (librdkafka takes every "
                   "property as text)");
  }
  SECTION("a start that is not a choice") {
    const Loaded l = Load(dir, head + "  bus: { type: kafka, brokers: b:9092, topic: t, "
                                      "group: g, start: oldest }\n");
    ExpectOneError(l, 5, 67, "sources.bus.start: expected one of earliest, latest, got 'oldest'");
  }
  SECTION("not a map") {
    const Loaded l = Load(dir, std::string(kDestinations) + "sources: [bus]\n");
    ExpectOneError(l, 4, 10, "sources: expected a map of name: {type: ...}");
  }
}

TEST_CASE("without source types, every source type is unknown", "[config][sources]") {
  TempDir dir;
  const std::string path = dir.Join("fork.yaml");
  test::WriteFileOrDie(path, std::string(kDestinations) +
                                 "sources:\n  bus: { type: kafka }\n");
  auto sinks = [](std::string_view type) -> const std::vector<OptionSpec>* {
    const sinks::SinkType* t = sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  Config config;
  std::vector<ConfigError> errors;
  CHECK_FALSE(LoadConfig(path, sinks, sinks::SinkTypeNames(), &config, &errors));
  REQUIRE(errors.size() == 1);
  CHECK(errors[0].message.rfind("sources.bus.type: expected one of", 0) == 0);
  CHECK(config.sources.empty());
}

TEST_CASE("the kafka source's table", "[sources]") {
  std::vector<std::string_view> names;
  for (const auto& s : sources::KafkaSourceOptions()) names.push_back(s.name);
  CHECK(names == std::vector<std::string_view>{"brokers", "topic", "group", "start", "options"});
  REQUIRE(sources::FindSourceType("kafka") != nullptr);
  CHECK(sources::FindSourceType("outbox") == nullptr);
  CHECK(sources::SourceTypeNames() == std::vector<std::string_view>{"kafka"});
}

}  // namespace forkd
