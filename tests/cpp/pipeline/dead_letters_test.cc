// Dead letters: what a line holds, that it parses back and replays to the
// exact stored event, and that rewrites (dlq drop/replay) never lose an
// append made at the same time.
#include "pipeline/dead_letters.h"

#include <atomic>
#include <thread>

#include "test_util.h"
#include "wire/msgpack.h"

namespace forkd::pipeline {
namespace {

using test::Pack;
using test::TempDir;

// A config with one destination and one transform template.
Config OneDestination(const std::string& name) {
  Config c;
  DestinationConfig d;
  d.name = name;
  d.type = "file";
  c.destinations.push_back(std::move(d));
  c.templates["clean"] = transforms::Chain{};
  c.max_event = 4096;
  c.limits.max_depth = 8;
  c.limits.max_string = 4096;
  c.limits.max_container = 4096;
  return c;
}

// A parsed letter of `hooks` whose raw bytes are `raw`, as an edit may leave them.
ParsedLetter WithRaw(const std::string& raw) {
  ParsedLetter l;
  l.id = "o-1";
  l.reason = "refused";
  l.raw = raw;
  return l;
}

TEST_CASE("base64 round-trips every length and refuses bad text", "[dlq]") {
  std::string data;
  for (int n = 0; n < 70; ++n) {
    const std::string enc = Base64(reinterpret_cast<const uint8_t*>(data.data()), data.size());
    CHECK(enc.size() % 4 == 0);
    std::string back;
    REQUIRE(FromBase64(enc, &back));
    CHECK(back == data);
    data.push_back(static_cast<char>(n * 37 + 11));
  }
  std::string out;
  CHECK_FALSE(FromBase64("abc", &out));
  CHECK_FALSE(FromBase64("a!c=", &out));
}

TEST_CASE("a letter holds reason, attempts, errors and the raw event; it parses back",
          "[dlq]") {
  const std::string options = Pack([](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("timestamp");
    w.Bool(true);
  });
  const std::string payload = Pack([](wire::Writer& w) {
    w.MapHeader(2);
    w.Str("orderId");
    w.Str("o-1");
    w.Str("bin");
    w.Bin("\x00\xff\n", 3);
  });
  Letter l;
  l.event_id = "o-1";
  l.reason = "http 400 from http://x/: \"bad\"\nline";
  l.attempts = 3;
  l.first_error = "first";
  l.last_error = "last";
  l.lsn = 42;
  l.options = reinterpret_cast<const uint8_t*>(options.data());
  l.options_size = options.size();
  l.payload = reinterpret_cast<const uint8_t*>(payload.data());
  l.payload_size = payload.size();
  std::string line;
  DeadLetters::Format("hooks", l, &line);
  REQUIRE(line.back() == '\n');
  CHECK(line.find('\n') == line.size() - 1);  // one line, whatever the reason holds
  CHECK(line.find("\"attempts\":3") != std::string::npos);
  CHECK(line.find("\"first_error\":\"first\"") != std::string::npos);
  CHECK(line.find("\"lsn\":42") != std::string::npos);
  CHECK(line.find("\"orderId\":\"o-1\"") != std::string::npos);

  line.pop_back();
  ParsedLetter p;
  std::string error;
  REQUIRE(ParseLetter(line, &p, &error));
  CHECK(p.id == "o-1");
  CHECK(p.reason == l.reason);
  CHECK(p.attempts == 3);
  CHECK_FALSE(p.shed);
  CHECK(p.raw == "\x92" + options + payload);
  // The replayed event: [[dest], id, options, payload], byte for byte.
  const std::string expected = Pack([&](wire::Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.Str("hooks");
    w.Str("o-1");
    w.Raw(options.data(), options.size());
    w.Raw(payload.data(), payload.size());
  });
  std::string event;
  REQUIRE(ReplayEvent(OneDestination("hooks"), "hooks", p, &event, &error));
  CHECK(event == expected);
}

TEST_CASE("a shed range and an aggregate row are not replayable", "[dlq]") {
  std::string line;
  DeadLetters::FormatShed("analytics", "shed: over quota", 10, 5000, 1234, &line);
  line.pop_back();
  ParsedLetter p;
  std::string error;
  REQUIRE(ParseLetter(line, &p, &error));
  CHECK(p.shed);
  CHECK(p.shed_events == 1234);
  CHECK(p.id.empty());
  CHECK(p.raw.empty());

  const std::string row = Pack([](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("revenue");
    w.Int(10);
  });
  Letter l;
  l.event_id = "2026-11-21T00:00:00Z/1d/[]";
  l.reason = "refused";
  l.payload = reinterpret_cast<const uint8_t*>(row.data());
  l.payload_size = row.size();
  line.clear();
  DeadLetters::Format("revenue", l, &line);
  line.pop_back();
  REQUIRE(ParseLetter(line, &p, &error));
  CHECK(p.raw.empty());
}

TEST_CASE("lines that are not dead letters are refused with the reason", "[dlq]") {
  ParsedLetter p;
  std::string error;
  CHECK_FALSE(ParseLetter("{not json", &p, &error));
  CHECK(error.find("not JSON") != std::string::npos);
  CHECK_FALSE(ParseLetter("[1,2]", &p, &error));
  CHECK_FALSE(ParseLetter(R"({"destination":"d","reason":"r","raw":"!!!!"})", &p, &error));
  CHECK(error.find("base64") != std::string::npos);
  CHECK_FALSE(ParseLetter(R"({"destination":"d","reason":"r","raw":"AAAA"})", &p, &error));
  CHECK(error.find("[options, payload]") != std::string::npos);
}

TEST_CASE("a replay is checked as ingest checks an event; what fails says why", "[dlq]") {
  const Config config = OneDestination("hooks");
  const std::string payload = Pack([](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("n");
    w.Int(1);
  });
  const std::string nil(1, '\xc0');
  std::string event, error;
  auto replay = [&](const std::string& raw) {
    event.clear();
    error.clear();
    return ReplayEvent(config, "hooks", WithRaw(raw), &event, &error);
  };
  SECTION("a letter as written replays") {
    CHECK(replay("\x92" + nil + payload));
    CHECK(error.empty());
    CHECK_FALSE(event.empty());
  }
  SECTION("options naming a configured template replay") {
    const std::string options = Pack([](wire::Writer& w) {
      w.MapHeader(1);
      w.Str("transform");
      w.Str("clean");
    });
    CHECK(replay("\x92" + options + payload));
  }
  SECTION("raw cut after its header") {
    CHECK_FALSE(replay("\x92"));
    CHECK_THAT(error, Catch::Contains("event: truncated"));
  }
  SECTION("raw cut inside the payload") {
    CHECK_FALSE(replay("\x92" + nil + payload.substr(0, payload.size() - 1)));
    CHECK_THAT(error, Catch::Contains("event: truncated"));
  }
  SECTION("bytes after the payload") {
    CHECK_FALSE(replay("\x92" + nil + payload + "\x01"));
    CHECK_THAT(error, Catch::Contains("1 trailing bytes after the event"));
  }
  SECTION("a payload that is not a map") {
    CHECK_FALSE(replay("\x92" + nil + "\x05"));
    CHECK(error == "event: payload must be a map (an object)");
  }
  SECTION("options that are not a map") {
    CHECK_FALSE(replay("\x92\xa1x" + payload));
    CHECK(error == "event: options must be nil or a map");
  }
  SECTION("a header that is not [options, payload]") {
    CHECK_FALSE(replay("\x93" + nil + payload + nil));
    CHECK(error == "raw is not [options, payload]");
  }
  SECTION("a count that lies about what follows") {
    CHECK_FALSE(replay("\x92" + nil + "\xdf\xff\xff\xff\xff"));
    CHECK_THAT(error, Catch::Contains("at byte"));
  }
  SECTION("nesting deeper than the config's limit") {
    std::string deep = "\x81\xa1k";
    for (int i = 0; i < 10; ++i) deep += "\x91";
    deep += "\x01";
    CHECK_FALSE(replay("\x92" + nil + deep));
    CHECK_THAT(error, Catch::Contains("nesting deeper than the limit"));
  }
  SECTION("larger than max_event") {
    const std::string big = Pack([](wire::Writer& w) {
      w.MapHeader(1);
      w.Str("s");
      w.Str(std::string(5000, 'x'));
    });
    CHECK_FALSE(replay("\x92" + nil + big));
    CHECK_THAT(error, Catch::Contains("exceeds limits.max_event (4096 bytes)"));
  }
  SECTION("options naming a template no longer configured") {
    const std::string options = Pack([](wire::Writer& w) {
      w.MapHeader(1);
      w.Str("transform");
      w.Str("gone");
    });
    CHECK_FALSE(replay("\x92" + options + payload));
    CHECK_THAT(error, Catch::Contains("unknown transform template 'gone'"));
  }
  SECTION("a destination the config does not have") {
    CHECK_FALSE(ReplayEvent(config, "other", WithRaw("\x92" + nil + payload), &event, &error));
    CHECK_THAT(error, Catch::Contains("'other' is not configured"));
  }
  CHECK(error.empty() == !event.empty());
}

TEST_CASE("Read numbers each line as it stands in the file", "[dlq]") {
  TempDir dir;
  DeadLetters letters(dir.path());
  REQUIRE(letters.Init().ok());
  test::WriteFileOrDie(letters.PathFor("d"), "a\n\nb\n\n\nc");
  std::vector<std::string> lines;
  std::vector<size_t> numbers;
  REQUIRE(letters.Read("d", &lines, &numbers).ok());
  CHECK(lines == std::vector<std::string>{"a", "b", "c"});
  CHECK(numbers == std::vector<size_t>{1, 3, 6});
}

TEST_CASE("rewrite keeps what it is told and never loses a concurrent append", "[dlq]") {
  TempDir dir;
  DeadLetters a(dir.path() + "/dl");   // the running forkd
  DeadLetters b(dir.path() + "/dl");   // `forkd dlq drop` beside it
  REQUIRE(a.Init().ok());
  std::atomic<bool> stop{false};
  std::atomic<int> appended{0};
  std::thread writer([&] {
    for (int i = 0; i < 400; ++i) {
      const std::string line = "{\"n\":" + std::to_string(i) + (i % 2 ? ",\"odd\":1}\n" : "}\n");
      REQUIRE(a.Append("d", line).ok());
      appended.fetch_add(1);
    }
    stop.store(true);
  });
  size_t dropped = 0;
  while (!stop.load()) {
    size_t removed = 0;
    REQUIRE(b.Rewrite("d", [](const std::string& l) { return l.find("odd") == std::string::npos; },
                      &removed)
                .ok());
    dropped += removed;
  }
  writer.join();
  size_t removed = 0;
  REQUIRE(b.Rewrite("d", [](const std::string& l) { return l.find("odd") == std::string::npos; },
                    &removed)
              .ok());
  dropped += removed;
  std::vector<std::string> lines;
  REQUIRE(a.Read("d", &lines).ok());
  // Every even line is still there, in order; every odd one was dropped once.
  REQUIRE(lines.size() == 200);
  for (size_t i = 0; i < lines.size(); ++i) {
    CHECK(lines[i] == "{\"n\":" + std::to_string(2 * i) + "}");
  }
  CHECK(dropped == 200);
}

}  // namespace
}  // namespace forkd::pipeline
