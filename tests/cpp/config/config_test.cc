// LoadConfig: defaults, every option, and every kind of mistake reported as
// `file:line:col: key.path: message` at the right place.
#include "config/config.h"

#include <cstdlib>

#include "sinks/registry.h"
#include "test_util.h"

namespace forkd {
namespace {

using test::TempDir;

struct Loaded {
  bool ok = false;
  std::string path;
  Config config;
  std::vector<ConfigError> errors;
  std::vector<std::string> messages;  // ToString() of each error
  std::string All() const {
    std::string s;
    for (const auto& m : messages) s += m + "\n";
    return s;
  }
};

// Writes `yaml` to <dir>/fork.yaml and loads it with the real sink registry,
// as forkd's main does.
Loaded Load(const TempDir& dir, const std::string& yaml, const std::string& name = "fork.yaml") {
  Loaded l;
  l.path = dir.Join(name);
  test::WriteFileOrDie(l.path, yaml);
  auto lookup = [](std::string_view type) -> const std::vector<OptionSpec>* {
    const sinks::SinkType* t = sinks::FindSinkType(type);
    return t == nullptr ? nullptr : &t->options();
  };
  l.ok = LoadConfig(l.path, lookup, sinks::SinkTypeNames(), &l.config, &l.errors);
  for (const auto& e : l.errors) l.messages.push_back(e.ToString());
  return l;
}

// "clickhouse, file, ...": the registered sink types, as messages list them.
std::string SinkTypeList() {
  std::string s;
  for (std::string_view n : sinks::SinkTypeNames()) s += (s.empty() ? "" : ", ") + std::string(n);
  return s;
}

// Expects exactly one error, at line:col, with `message` after the position.
void ExpectOneError(const Loaded& l, int line, int col, const std::string& message) {
  INFO(l.All());
  CHECK_FALSE(l.ok);
  REQUIRE(l.errors.size() == 1);
  CHECK(l.errors[0].file == l.path);
  CHECK(l.errors[0].mark.line == line);
  CHECK(l.errors[0].mark.column == col);
  CHECK(l.errors[0].message == message);
  CHECK(l.messages[0] ==
        l.path + ":" + std::to_string(line) + ":" + std::to_string(col) + ": " + message);
}

// Sets an environment variable for the scope of a test.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (value != nullptr) {
      ::setenv(name, value, 1);
    } else {
      ::unsetenv(name);
    }
  }
  ~ScopedEnv() { ::unsetenv(name_); }

 private:
  const char* name_;
};

const char* kMinimal =
    "destinations:\n"
    "  logs:\n"
    "    type: file\n"
    "    path: out/events.jsonl\n";

}  // namespace

TEST_CASE("a minimal config gets every default", "[config]") {
  TempDir dir;
  const Loaded l = Load(dir, kMinimal);
  INFO(l.All());
  REQUIRE(l.ok);
  const Config& c = l.config;
  CHECK(c.path == l.path);
  CHECK(c.base_dir == dir.path());
  CHECK(c.data_dir == dir.path() + "/.fork");
  CHECK(c.listen == "ipc://" + dir.path() + "/.fork/fork.sock");
  CHECK_FALSE(c.admin.enabled());
  CHECK(c.fsync == log::FsyncPolicy::kBatch);
  CHECK(c.batch_ms == 0);  // adaptive group commit
  CHECK(c.segment_bytes == 64ll << 20);
  CHECK(c.max_frame == 16ll << 20);
  CHECK(c.max_event == 1ll << 20);
  CHECK(c.limits.max_depth == 64);
  CHECK(c.limits.max_string == 1u << 20);
  CHECK(c.limits.max_container == 1u << 20);
  REQUIRE(c.destinations.size() == 1);
  const DestinationConfig& d = c.destinations[0];
  CHECK(d.name == "logs");
  CHECK(d.type == "file");
  CHECK(d.mark.line == 2);
  CHECK(d.mark.column == 3);
  CHECK(d.sink.Str("path") == "out/events.jsonl");
  CHECK(d.sink.Has("path"));
  CHECK(d.sink.Str("format") == "jsonl");
  CHECK_FALSE(d.sink.Has("format"));
  CHECK(d.sink.Bool("fsync"));
  CHECK(d.common.Str("priority") == "normal");
  CHECK(d.batch_max_events == 10000);
  CHECK(d.batch_max_bytes == 8ll << 20);
  CHECK(d.batch_max_wait_ms == 100);
  CHECK(d.retry_initial_ms == 100);
  CHECK(d.retry_max_ms == 30000);
  CHECK(c.Find("logs") == &d);
  CHECK(c.Find("other") == nullptr);
  CHECK(c.Resolve("out/events.jsonl") == dir.path() + "/out/events.jsonl");
  CHECK(c.Resolve("./a/../b/") == dir.path() + "/b/");
  CHECK(c.Resolve("/abs//x/./y") == "/abs/x/y");
}

TEST_CASE("every option is read", "[config]") {
  TempDir dir;
  const Loaded l = Load(dir,
                        "data_dir: ./state/../data/\n"
                        "listen: tcp://127.0.0.1:5555\n"
                        "insecure_tcp: true\n"
                        "admin: 127.0.0.1:9090\n"
                        "wal:\n"
                        "  fsync: never\n"
                        "  batch_ms: 5\n"
                        "  segment_bytes: 1MiB\n"
                        "limits:\n"
                        "  max_frame: 2MiB\n"
                        "  max_event: 64KiB\n"
                        "  max_depth: 10\n"
                        "destinations:\n"
                        "  logs:\n"
                        "    type: file\n"
                        "    path: /var/log/fork/\n"
                        "    format: csv\n"
                        "    rotate: 1h\n"
                        "    columns: [a, b]\n"
                        "    fsync: false\n"
                        "    batch:\n"
                        "      max_events: 500\n"
                        "      max_bytes: 1MB\n"
                        "      max_wait: 2s\n"
                        "    retry:\n"
                        "      initial: 250ms\n"
                        "      max: 1m\n"
                        "    priority: high\n"
                        "  console:\n"
                        "    type: stdout\n");
  INFO(l.All());
  REQUIRE(l.ok);
  const Config& c = l.config;
  CHECK(c.data_dir == dir.path() + "/data");
  CHECK(c.listen == "tcp://127.0.0.1:5555");
  CHECK(c.insecure_tcp);
  CHECK(c.admin.listen == "127.0.0.1:9090");
  CHECK(c.fsync == log::FsyncPolicy::kNever);
  CHECK(c.batch_ms == 5);
  CHECK(c.segment_bytes == 1 << 20);
  CHECK(c.max_frame == 2 << 20);
  CHECK(c.max_event == 64 << 10);
  CHECK(c.limits.max_depth == 10);
  CHECK(c.limits.max_string == 64u << 10);
  REQUIRE(c.destinations.size() == 2);
  const DestinationConfig& d = c.destinations[0];
  CHECK(d.name == "logs");
  CHECK(d.sink.Str("format") == "csv");
  CHECK(d.sink.Str("rotate") == "1h");
  CHECK(d.sink.Node("columns").IsSequence());
  CHECK_FALSE(d.sink.Bool("fsync"));
  CHECK(d.batch_max_events == 500);
  CHECK(d.batch_max_bytes == 1000000);
  CHECK(d.batch_max_wait_ms == 2000);
  CHECK(d.retry_initial_ms == 250);
  CHECK(d.retry_max_ms == 60000);
  CHECK(d.common.Str("priority") == "high");
  CHECK(c.destinations[1].name == "console");
  CHECK(c.destinations[1].type == "stdout");
  CHECK(c.destinations[1].mark.line == 29);
}

TEST_CASE("YAML syntax errors point at the line and column", "[config]") {
  TempDir dir;
  // yaml-cpp reports where it found the error; these are placed so that the
  // spot is unambiguous.
  SECTION("a second colon in a value") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path: a: b\n");
    ExpectOneError(l, 4, 12, "illegal map value");
  }
  SECTION("a stray closing bracket") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path: x\n"
                          "    columns: [a, b]]\n");
    ExpectOneError(l, 5, 20, "illegal flow end");
  }
  SECTION("an alias to no anchor") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path: *out\n");
    ExpectOneError(l, 4, 11, "the referenced anchor is not defined");
  }
  SECTION("a key indented less than its siblings") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "   path: x\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 1);
    CHECK(l.errors[0].mark.line == 4);
    CHECK(l.errors[0].mark.column == 4);
  }
  SECTION("a file that is not there") {
    auto lookup = [](std::string_view) -> const std::vector<OptionSpec>* { return nullptr; };
    Config c;
    std::vector<ConfigError> errors;
    CHECK_FALSE(LoadConfig(dir.Join("missing.yaml"), lookup, {}, &c, &errors));
    REQUIRE(errors.size() == 1);
    CHECK(errors[0].ToString() == dir.Join("missing.yaml") + ": cannot read the file");
  }
  SECTION("a file that is not a map") {
    const Loaded l = Load(dir, "- a\n- b\n");
    ExpectOneError(l, 1, 1, "the file must be a map with a destinations key");
  }
}

TEST_CASE("unknown keys are reported where they are, with a suggestion", "[config]") {
  TempDir dir;
  SECTION("at the top level") {
    const Loaded l = Load(dir, std::string(kMinimal) + "data_dri: /tmp/x\n");
    ExpectOneError(l, 5, 1, "config: unknown option 'data_dri' (did you mean 'data_dir'?)");
  }
  SECTION("in the wal section") {
    const Loaded l = Load(dir, std::string(kMinimal) +
                                   "wal:\n"
                                   "  fsync: batch\n"
                                   "  fsycn: never\n");
    ExpectOneError(l, 7, 3, "wal: unknown option 'fsycn' (did you mean 'fsync'?)");
  }
  SECTION("among a sink's options") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path: out.jsonl\n"
                          "    formt: csv\n");
    ExpectOneError(l, 5, 5, "destinations.logs: unknown option 'formt' (did you mean 'format'?)");
  }
  SECTION("in a destination's batch") {
    const Loaded l = Load(dir, std::string(kMinimal) +
                                   "    batch:\n"
                                   "      max_event: 5\n");
    ExpectOneError(l, 6, 7,
                   "destinations.logs.batch: unknown option 'max_event' (did you mean "
                   "'max_events'?)");
  }
  SECTION("nothing close: no suggestion") {
    const Loaded l = Load(dir, std::string(kMinimal) + "completely_unrelated: 1\n");
    ExpectOneError(l, 5, 1, "config: unknown option 'completely_unrelated'");
  }
  SECTION("a misspelt required key: unknown and missing") {
    const Loaded l = Load(dir,
                          "destination:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path: x\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 2);
    CHECK(l.messages[0] ==
          l.path + ":1:1: config: unknown option 'destination' (did you mean 'destinations'?)");
    CHECK_THAT(l.messages[1],
               Catch::StartsWith(l.path + ":1:1: config.destinations: required option is missing"));
  }
}

TEST_CASE("a value outside an enum names the choices", "[config]") {
  TempDir dir;
  SECTION("wal.fsync") {
    const Loaded l = Load(dir, std::string(kMinimal) +
                                   "wal:\n"
                                   "  fsync: sometimes\n");
    ExpectOneError(l, 6, 10, "wal.fsync: expected one of batch, never, got 'sometimes'");
  }
  SECTION("a close miss gets a suggestion") {
    const Loaded l = Load(dir, std::string(kMinimal) +
                                   "wal:\n"
                                   "  fsync: batchh\n");
    ExpectOneError(l, 6, 10,
                   "wal.fsync: expected one of batch, never, got 'batchh' (did you mean 'batch'?)");
  }
  SECTION("a sink type") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: fiel\n"
                          "    path: x\n");
    ExpectOneError(l, 3, 11,
                   "destinations.logs.type: expected one of " + SinkTypeList() +
                       ", got 'fiel' (did you mean 'file'?)");
  }
  SECTION("a sink's own enum") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    format: xml\n");
    ExpectOneError(l, 5, 13, "destinations.logs.format: expected one of jsonl, csv, got 'xml'");
  }
  SECTION("a list where a value belongs") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    format: [jsonl]\n");
    ExpectOneError(l, 5, 13, "destinations.logs.format: expected one of jsonl, csv, got a list");
  }
}

TEST_CASE("missing required options are reported", "[config]") {
  TempDir dir;
  SECTION("no destinations") {
    const Loaded l = Load(dir, "data_dir: x\n");
    ExpectOneError(l, 1, 1, "config.destinations: required option is missing (Named destinations)");
  }
  SECTION("destinations with no value") {
    const Loaded l = Load(dir, "data_dir: x\ndestinations:\n");
    ExpectOneError(l, 1, 1, "config.destinations: required option is missing (Named destinations)");
  }
  SECTION("a destination without a type") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    path: x\n");
    ExpectOneError(l, 3, 5, "destinations.logs.type: required option is missing (The sink type)");
  }
  SECTION("a file sink without a path") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    format: csv\n");
    ExpectOneError(l, 2, 3,
                   "destinations.logs.path: required option is missing (File to write, or a "
                   "directory (ending in /) of files named by time)");
  }
  SECTION("a file sink whose path is empty") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path:\n");
    INFO(l.All());
    CHECK_FALSE(l.ok);
    REQUIRE(l.errors.size() == 1);
    CHECK_THAT(l.errors[0].message,
               Catch::StartsWith("destinations.logs.path: required option is missing"));
  }
  SECTION("empty destinations") {
    const Loaded l = Load(dir, "destinations: {}\n");
    ExpectOneError(l, 1, 15, "destinations: at least one is needed");
  }
  SECTION("destinations that are not a map") {
    const Loaded l = Load(dir, "destinations:\n  - logs\n");
    ExpectOneError(l, 2, 3, "destinations: expected a map of name: {type: ...}");
  }
}

TEST_CASE("${ENV} interpolation", "[config]") {
  TempDir dir;
  SECTION("a set variable, and a default for an unset one") {
    ScopedEnv out("FORK_TEST_OUT", "/srv/out");
    ScopedEnv unset("FORK_TEST_UNSET", nullptr);
    ScopedEnv seg("FORK_TEST_SEG", "2MiB");
    const Loaded l = Load(dir,
                          "admin: ${FORK_TEST_UNSET:-127.0.0.1:1}\n"
                          "wal:\n"
                          "  segment_bytes: ${FORK_TEST_SEG}\n"
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path: ${FORK_TEST_OUT}/events-${FORK_TEST_UNSET:-x}.jsonl\n");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.admin.listen == "127.0.0.1:1");
    CHECK(l.config.segment_bytes == 2 << 20);
    CHECK(l.config.destinations[0].sink.Str("path") == "/srv/out/events-x.jsonl");
  }
  SECTION("a missing variable is an error at its value") {
    ScopedEnv unset("FORK_TEST_UNSET", nullptr);
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  logs:\n"
                          "    type: file\n"
                          "    path: ${FORK_TEST_UNSET}/events.jsonl\n");
    ExpectOneError(l, 4, 11,
                   "destinations.logs.path: environment variable ${FORK_TEST_UNSET} is not set");
  }
  SECTION("an empty variable counts as unset") {
    ScopedEnv empty("FORK_TEST_EMPTY", "");
    const Loaded l = Load(dir, std::string(kMinimal) + "admin: ${FORK_TEST_EMPTY}\n");
    ExpectOneError(l, 5, 8, "config.admin: environment variable ${FORK_TEST_EMPTY} is not set");
  }
  SECTION("Interpolate itself") {
    ScopedEnv a("FORK_TEST_A", "alpha");
    std::string out, missing;
    CHECK(Interpolate("x${FORK_TEST_A}y${FORK_TEST_A}", &out, &missing));
    CHECK(out == "xalphayalpha");
    CHECK(Interpolate("no vars, $ and {} and $x", &out, &missing));
    CHECK(out == "no vars, $ and {} and $x");
    CHECK(Interpolate("${unclosed", &out, &missing));
    CHECK(out == "${unclosed");
    CHECK(Interpolate("${FORK_TEST_NOPE:-}", &out, &missing));
    CHECK(out.empty());
    CHECK_FALSE(Interpolate("a${FORK_TEST_NOPE}b", &out, &missing));
    CHECK(missing == "FORK_TEST_NOPE");
  }
}

TEST_CASE("values of the wrong type or out of range", "[config]") {
  TempDir dir;
  SECTION("an integer out of range") {
    const Loaded l = Load(dir, std::string(kMinimal) + "wal:\n  batch_ms: 5000\n");
    ExpectOneError(l, 6, 13, "wal.batch_ms: value 5000 out of range [0, 1000]");
  }
  SECTION("not an integer") {
    const Loaded l = Load(dir, std::string(kMinimal) + "wal:\n  batch_ms: 5ms\n");
    ExpectOneError(l, 6, 13, "wal.batch_ms: expected an integer, got '5ms'");
  }
  SECTION("a bad size") {
    const Loaded l = Load(dir, std::string(kMinimal) + "limits:\n  max_event: 5XB\n");
    ExpectOneError(l, 6, 14, "limits.max_event: expected a size like 64KiB, 64MiB, got '5XB'");
  }
  SECTION("a bad duration") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    retry:\n      max: soon\n");
    ExpectOneError(l, 6, 12,
                   "destinations.logs.retry.max: expected a duration like 250ms, 2s, 1h, got "
                   "'soon'");
  }
  SECTION("a bad boolean") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    fsync: maybe\n");
    ExpectOneError(l, 5, 12, "destinations.logs.fsync: expected true or false, got 'maybe'");
  }
  SECTION("a bad destination name") {
    const Loaded l = Load(dir,
                          "destinations:\n"
                          "  \"bad name\":\n"
                          "    type: stdout\n");
    ExpectOneError(l, 2, 3, "destinations.bad name: names are 1-64 letters, digits, _ or -");
  }
  SECTION("a socket path too long for a Unix socket") {
    const Loaded l = Load(
        dir, std::string(kMinimal) + "listen: ipc:///" + std::string(120, 'd') + "/fork.sock\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 1);
    CHECK(l.errors[0].mark.line == 5);
    CHECK_THAT(l.errors[0].message, Catch::Contains("longer than the 107 bytes"));
  }
}

TEST_CASE("every mistake in a file is reported at once", "[config]") {
  TempDir dir;
  const Loaded l = Load(dir,
                        "wal:\n"
                        "  fsync: sometimes\n"
                        "  batch_ms: -1\n"
                        "limits:\n"
                        "  max_depht: 5\n"
                        "destinations:\n"
                        "  a:\n"
                        "    type: file\n"
                        "  b:\n"
                        "    type: nope\n"
                        "  c:\n"
                        "    type: stdout\n"
                        "    batch: {max_events: 0}\n");
  INFO(l.All());
  CHECK_FALSE(l.ok);
  const std::vector<std::string> want = {
      l.path + ":2:10: wal.fsync: expected one of batch, never, got 'sometimes'",
      l.path + ":3:13: wal.batch_ms: value -1 out of range [0, 1000]",
      l.path + ":5:3: limits: unknown option 'max_depht' (did you mean 'max_depth'?)",
      l.path +
          ":7:3: destinations.a.path: required option is missing (File to write, or a "
          "directory (ending in /) of files named by time)",
      l.path + ":10:11: destinations.b.type: expected one of " + SinkTypeList() + ", got 'nope'",
      l.path + ":13:25: destinations.c.batch.max_events: value 0 out of range [1, 1000000]",
  };
  CHECK(l.messages == want);
}

TEST_CASE("durations, sizes and suggestions", "[config]") {
  int64_t v = 0;
  CHECK(ParseDurationMs("250ms", &v));
  CHECK(v == 250);
  CHECK(ParseDurationMs("2s", &v));
  CHECK(v == 2000);
  CHECK(ParseDurationMs("1.5m", &v));
  CHECK(v == 90000);
  CHECK(ParseDurationMs("1h", &v));
  CHECK(v == 3600000);
  CHECK(ParseDurationMs("1d", &v));
  CHECK(v == 86400000);
  CHECK(ParseDurationMs("42", &v));
  CHECK(v == 42);
  CHECK_FALSE(ParseDurationMs("", &v));
  CHECK_FALSE(ParseDurationMs("-1s", &v));
  CHECK_FALSE(ParseDurationMs("1w", &v));
  CHECK_FALSE(ParseDurationMs("s", &v));
  // Past what an int64 of milliseconds holds, and NaN: refused, not cast
  // (a fuzzer found "1e70d").
  CHECK_FALSE(ParseDurationMs("1e70d", &v));
  CHECK_FALSE(ParseDurationMs("1e16s", &v));
  CHECK_FALSE(ParseDurationMs("nan", &v));
  CHECK(ParseDurationMs("1e15s", &v));
  CHECK(v == 1000000000000000000);
  CHECK_FALSE(ParseSize("1e30GiB", &v));
  CHECK_FALSE(ParseSize("nanKiB", &v));
  CHECK(ParseSize("64KiB", &v));
  CHECK(v == 65536);
  CHECK(ParseSize("64MiB", &v));
  CHECK(v == 64 << 20);
  CHECK(ParseSize("1GiB", &v));
  CHECK(v == 1 << 30);
  CHECK(ParseSize("5MB", &v));
  CHECK(v == 5000000);
  CHECK(ParseSize("512", &v));
  CHECK(v == 512);
  CHECK(ParseSize("2K", &v));
  CHECK(v == 2048);
  CHECK_FALSE(ParseSize("5 MB", &v));
  CHECK_FALSE(ParseSize("-5", &v));
  CHECK_FALSE(ParseSize("lots", &v));
  CHECK(DidYouMean("destination", {"data_dir", "destinations"}) == "destinations");
  CHECK(DidYouMean("FSYNC", {"fsync", "batch_ms"}) == "fsync");
  CHECK(DidYouMean("zzzzzzzz", {"fsync", "batch_ms"}).empty());
}

TEST_CASE("ConfigError formats as file:line:col: message", "[config]") {
  CHECK(ConfigError{"f.yaml", {3, 7}, "wal: bad"}.ToString() == "f.yaml:3:7: wal: bad");
  CHECK(ConfigError{"f.yaml", {}, "cannot read the file"}.ToString() ==
        "f.yaml: cannot read the file");
}

TEST_CASE("option tables render as Markdown rows", "[config]") {
  const std::string md = OptionsMarkdown(WalOptions());
  CHECK_THAT(md,
             Catch::StartsWith("| option | type | default | description |\n|---|---|---|---|\n"));
  CHECK_THAT(md, Catch::Contains("| `fsync` | batch, never | `batch` |"));
  CHECK_THAT(OptionsMarkdown(TopLevelOptions()),
             Catch::Contains("| `destinations` | a value | required |"));
}


TEST_CASE("isolation settings: retry limits, breaker, rate limit, backlog, priority", "[config]") {
  TempDir dir;
  SECTION("defaults: retry forever, breaker at 5, no rate limit, 1GiB blocking backlog") {
    const Loaded l = Load(dir, kMinimal);
    INFO(l.All());
    REQUIRE(l.ok);
    const DestinationConfig& d = l.config.destinations[0];
    CHECK(d.retry_max_attempts == 0);
    CHECK(d.retry_max_age_ms == 0);
    CHECK(d.breaker_failures == 5);
    CHECK(d.breaker_cooldown_ms == 10000);
    CHECK(d.rate_limit == 0);
    CHECK(d.backlog_max_bytes == 1ll << 30);
    CHECK(d.backlog_max_events == 0);
    CHECK_FALSE(d.backlog_shed);
    CHECK(d.priority == Priority::kNormal);
  }
  SECTION("every key") {
    const Loaded l = Load(dir, std::string(kMinimal) +
                                   "    retry: { max_attempts: 10, max_age: 1h }\n"
                                   "    breaker: { failures: 3, cooldown: 2s }\n"
                                   "    rate_limit: { rate: 500, burst: 50 }\n"
                                   "    backlog: { max_bytes: 10MiB, max_events: 1000, policy: shed }\n"
                                   "    priority: low\n");
    INFO(l.All());
    REQUIRE(l.ok);
    const DestinationConfig& d = l.config.destinations[0];
    CHECK(d.retry_max_attempts == 10);
    CHECK(d.retry_max_age_ms == 3600000);
    CHECK(d.breaker_failures == 3);
    CHECK(d.breaker_cooldown_ms == 2000);
    CHECK(d.rate_limit == 500);
    CHECK(d.rate_burst == 50);
    CHECK(d.backlog_max_bytes == 10ll << 20);
    CHECK(d.backlog_max_events == 1000);
    CHECK(d.backlog_shed);
    CHECK(d.priority == Priority::kLow);
  }
  SECTION("rate_limit as a number: the burst is one second's worth") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    rate_limit: 200\n");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.destinations[0].rate_limit == 200);
    CHECK(l.config.destinations[0].rate_burst == 200);
  }
  SECTION("a rate of 0 is refused where it is") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    rate_limit: 0\n");
    ExpectOneError(l, 5, 17,
                   "destinations.logs.rate_limit.rate: value 0 out of range [1, 100000000]");
  }
  SECTION("an unknown key under backlog gets a suggestion") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    backlog: { max_byte: 1MiB }\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 1);
    CHECK_THAT(l.errors[0].message, Catch::Contains("backlog: unknown option 'max_byte'"));
    CHECK_THAT(l.errors[0].message, Catch::Contains("max_bytes"));
  }
  SECTION("a bad policy names the choices") {
    const Loaded l = Load(dir, std::string(kMinimal) + "    backlog: { policy: drop }\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 1);
    CHECK_THAT(l.errors[0].message, Catch::Contains("block, shed"));
  }
  SECTION("shed is refused for an aggregating destination") {
    const Loaded l = Load(dir, std::string(kMinimal) +
                                   "    backlog: { policy: shed }\n"
                                   "    transforms:\n"
                                   "      - aggregate: { window: 1h, measures: { n: count() } }\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 1);
    CHECK(l.errors[0].mark.line == 5);
    CHECK_THAT(l.errors[0].message,
               Catch::Contains("backlog.policy: shed cannot be used with an aggregate step"));
  }
}

TEST_CASE("admin: a string or {listen, token | token_file}; elsewhere than loopback, a token",
          "[config][admin]") {
  TempDir dir;
  ScopedEnv no_env("FORK_ADMIN_TOKEN", nullptr);
  const std::string token = "0123456789abcdef0123";
  SECTION("the short form: loopback, no token") {
    const Loaded l = Load(dir, std::string(kMinimal) + "admin: 127.0.0.1:9090\n");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.admin.listen == "127.0.0.1:9090");
    CHECK(l.config.admin.address.port == 9090);
    CHECK(l.config.admin.address.loopback);
    CHECK(l.config.admin.token.empty());
    CHECK(l.config.admin.token_source.empty());
  }
  SECTION("the map form with a token, from ${ENV}") {
    ScopedEnv secret("FORK_TEST_SECRET", token.c_str());
    const Loaded l =
        Load(dir, std::string(kMinimal) +
                      "admin: { listen: \"0.0.0.0:9090\", token: \"${FORK_TEST_SECRET}\" }\n");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.admin.listen == "0.0.0.0:9090");
    CHECK_FALSE(l.config.admin.address.loopback);
    CHECK(l.config.admin.token == token);
    CHECK(l.config.admin.token_source == "admin.token");
  }
  SECTION("token_file: its first line, relative to the config file") {
    test::WriteFileOrDie(dir.Join("admin.token"), token + "\n");
    const Loaded l = Load(dir, std::string(kMinimal) +
                                   "admin:\n  listen: 10.1.2.3:9090\n  token_file: admin.token\n");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.admin.token == token);
    CHECK(l.config.admin.token_source == "admin.token_file " + dir.Join("admin.token"));
  }
  SECTION("FORK_ADMIN_TOKEN when the file names none; the file's token first") {
    ScopedEnv env("FORK_ADMIN_TOKEN", "from-the-environment-0123");
    Loaded l = Load(dir, std::string(kMinimal) + "admin: 0.0.0.0:9090\n");
    INFO(l.All());
    REQUIRE(l.ok);
    CHECK(l.config.admin.token == "from-the-environment-0123");
    CHECK(l.config.admin.token_source == "FORK_ADMIN_TOKEN");
    l = Load(dir, std::string(kMinimal) + "admin: { listen: 127.0.0.1:1, token: " + token + " }\n");
    REQUIRE(l.ok);
    CHECK(l.config.admin.token == token);
  }
  SECTION("not loopback without a token is an error at the address, naming the token") {
    Loaded l = Load(dir, std::string(kMinimal) + "admin: 0.0.0.0:9090\n");
    ExpectOneError(l, 5, 8,
                   "admin: 0.0.0.0 is not a loopback address, so others can reach the admin "
                   "server: it needs a token (admin: {listen, token_file} or {listen, token}, "
                   "or FORK_ADMIN_TOKEN in forkd's environment)");
    l = Load(dir, std::string(kMinimal) + "admin:\n  listen: forkd.internal:9090\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 1);
    CHECK(l.errors[0].mark.line == 6);
    CHECK(l.errors[0].mark.column == 11);
    CHECK_THAT(l.errors[0].message, Catch::StartsWith("admin.listen: forkd.internal is not a "
                                                      "loopback address"));
  }
  SECTION("mistakes: a short token, both token and token_file, a missing file, a bad address") {
    Loaded l = Load(dir, std::string(kMinimal) + "admin: { listen: 127.0.0.1:1, token: abc }\n");
    ExpectOneError(l, 5, 38,
                   "admin.token: the token is 3 characters; at least 16 are needed (e.g. "
                   "`openssl rand -hex 32`)");
    l = Load(dir, std::string(kMinimal) + "admin: { listen: 127.0.0.1:1, token: " + token +
                      ", token_file: t }\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 1);
    CHECK(l.errors[0].message == "admin: set token or token_file, not both");
    l = Load(dir, std::string(kMinimal) + "admin: { listen: 127.0.0.1:1, token_file: nope }\n");
    REQUIRE(l.errors.size() == 1);
    CHECK_THAT(l.errors[0].message, Catch::StartsWith("admin.token_file: "));
    CHECK_THAT(l.errors[0].message, Catch::Contains(dir.Join("nope")));
    l = Load(dir, std::string(kMinimal) + "admin: 8787\n");
    ExpectOneError(l, 5, 8,
                   "admin: expected host:port (e.g. 127.0.0.1:8787 or [::1]:8787), got '8787'");
    l = Load(dir, std::string(kMinimal) + "admin: { port: 1 }\n");
    INFO(l.All());
    REQUIRE(l.errors.size() == 2);
    CHECK_THAT(l.All(), Catch::Contains("admin: unknown option 'port'"));
    CHECK_THAT(l.All(), Catch::Contains("admin.listen: required option is missing"));
    {
      ScopedEnv env("FORK_ADMIN_TOKEN", "short");
      l = Load(dir, std::string(kMinimal) + "admin: 127.0.0.1:1\n");
      ExpectOneError(l, 5, 8,
                     "admin: the token in FORK_ADMIN_TOKEN is 5 characters; at least 16 are "
                     "needed (e.g. `openssl rand -hex 32`)");
    }
  }
}

}  // namespace forkd
