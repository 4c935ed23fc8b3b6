#include "ingest/http/json_events.h"

#include <catch2/catch.hpp>

#include "wire/codec.h"

using namespace forkd;
using namespace forkd::ingest::http;

namespace {

Events Parse(std::string_view body, BodyFormat format = BodyFormat::kJson) {
  Events out;
  BodyError err;
  EventLimits limits;
  INFO(body);
  const bool ok = ParseEvents(body, format, limits, &out, &err);
  INFO(err.message);
  REQUIRE(ok);
  return out;
}

BodyError Refuse(std::string_view body, BodyFormat format = BodyFormat::kJson,
                 EventLimits limits = {}) {
  Events out;
  BodyError err;
  INFO(body);
  REQUIRE_FALSE(ParseEvents(body, format, limits, &out, &err));
  return err;
}

// The event's parts, as ingest sees them.
wire::EventView View(const Events& e, size_t i) {
  wire::Limits limits;
  wire::EventView v;
  std::string error;
  const Event& ev = e.events[i];
  INFO(error);
  REQUIRE(wire::CheckEvent(e.wire.data() + ev.offset, ev.size, limits, &v, &error));
  return v;
}

std::string Hex(const uint8_t* p, size_t n) {
  static const char k[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s.push_back(k[p[i] >> 4]);
    s.push_back(k[p[i] & 15]);
  }
  return s;
}

}  // namespace

TEST_CASE("http body: one event becomes [dests, key, options, payload] as the addon encodes it",
          "[ingest][http]") {
  Events e = Parse(R"({"payload":{"a":1,"b":[true,null,-2,2.5,"x"]},"destination":"logs"})");
  REQUIRE(e.single);
  REQUIRE(e.events.size() == 1);
  const wire::EventView v = View(e, 0);
  CHECK(v.dest_count == 1);
  CHECK_FALSE(v.has_key);
  CHECK(e.events[0].destinations == std::vector<std::string>{"logs"});
  // {"a":1,"b":[true,nil,-2,2.5,"x"]} in msgpack's smallest forms.
  CHECK(Hex(v.payload, v.payload_size) ==
        "82a16101a16295c3c0fecb4004000000000000a178");
}

TEST_CASE("http body: whole numbers are integers, as a JS number is encoded", "[ingest][http]") {
  Events e = Parse(R"({"payload":{"a":1.0,"b":1e3,"c":-0.5,"d":18446744073709551615}})");
  const wire::EventView v = View(e, 0);
  CHECK(Hex(v.payload, v.payload_size) ==
        "84a16101a162cd03e8a163cbbfe0000000000000a164cfffffffffffffffff");
}

TEST_CASE("http body: strings are decoded; a lone surrogate becomes U+FFFD", "[ingest][http]") {
  Events e = Parse(R"({"payload":{"s":"\u00e9\ud83d\ude00\n\"\\\/","l":"\ud800x"}})");
  const wire::EventView v = View(e, 0);
  wire::Reader r(v.payload, v.payload_size);
  REQUIRE(r.Next().len == 2);
  CHECK(r.Next().str() == "s");
  CHECK(r.Next().str() == "\xc3\xa9\xf0\x9f\x98\x80\n\"\\/");
  CHECK(r.Next().str() == "l");
  CHECK(r.Next().str() == "\xef\xbf\xbdx");
}

TEST_CASE("http body: containers of 16 and 65536 entries take the longer headers",
          "[ingest][http]") {
  std::string big = R"({"payload":{"a":[)";
  for (int i = 0; i < 70000; ++i) big += i ? ",0" : "0";
  big += "]}}";
  Events e = Parse(big);
  const wire::EventView v = View(e, 0);
  wire::Reader r(v.payload, v.payload_size);
  r.Next();
  r.Next();
  CHECK(r.Next().len == 70000);
}

TEST_CASE("http body: options become the wire's options, key and ack", "[ingest][http]") {
  Events e = Parse(R"({"payload":{},"destination":["a","b"],"options":{
      "idempotencyKey":"k-1","ack":"delivered","timeoutMs":250,"timestamp":{"field":"at"},
      "transform":["t1","t2"],"aggregate":{"window":"1d"},"key":"user-7"}})");
  const Event& ev = e.events[0];
  CHECK(ev.key == "k-1");
  CHECK(ev.ack == AckLevel::kDelivered);
  CHECK(ev.timeout_ms == 250);
  const wire::EventView v = View(e, 0);
  CHECK(v.key == "k-1");
  CHECK(v.dest_count == 2);
  wire::Reader r(v.options, v.options_size);
  CHECK(r.Next().len == 4);  // timestamp, transform, aggregate, key
  CHECK(r.Next().str() == "timestamp");
  CHECK(r.Next().len == 1);
  CHECK(r.Next().str() == "field");
  CHECK(r.Next().str() == "at");
  CHECK(r.Next().str() == "transform");
  CHECK(r.Next().len == 2);
}

TEST_CASE("http body: an array and NDJSON give several events", "[ingest][http]") {
  Events a = Parse(R"( [ {"payload":{"n":1}} , {"payload":{"n":2},"options":{"ack":"none"}} ] )");
  CHECK_FALSE(a.single);
  REQUIRE(a.events.size() == 2);
  CHECK(a.events[1].ack == AckLevel::kNone);
  Events n = Parse("{\"payload\":{\"n\":1}}\r\n\n  \n{\"payload\":{\"n\":2}}", BodyFormat::kNdjson);
  REQUIRE(n.events.size() == 2);
  View(n, 1);
}

TEST_CASE("http body: what is wrong is named by its path, with the addon's codes",
          "[ingest][http]") {
  struct Case {
    const char* body;
    const char* code;
    const char* path;
  };
  const Case cases[] = {
      {R"([{"payload":{}},{"payload":{},"options":{"ack":"soon"}}])", "FORK_INVALID_PAYLOAD",
       "[1].options.ack"},
      {R"({"payload":{},"options":{"timeoutMs":0}})", "FORK_INVALID_PAYLOAD", "options.timeoutMs"},
      {R"({"payload":{},"options":{"timeoutMs":1.5}})", "FORK_INVALID_PAYLOAD", "options.timeoutMs"},
      {R"({"payload":{},"options":{"bogus":1}})", "FORK_INVALID_PAYLOAD", "options.bogus"},
      {R"({"payload":{},"options":{"timestamp":{"format":"unix"}}})", "FORK_INVALID_PAYLOAD",
       "options.timestamp.format"},
      {R"({"payload":{},"options":{"transform":["a",""]}})", "FORK_INVALID_PAYLOAD",
       "options.transform[1]"},
      {R"({"payload":{},"options":{"idempotencyKey":""}})", "FORK_INVALID_PAYLOAD",
       "options.idempotencyKey"},
      {R"({"payload":[1]})", "FORK_INVALID_PAYLOAD", "payload"},
      {R"({"destination":"logs"})", "FORK_INVALID_PAYLOAD", "payload"},
      {R"({"payload":{},"destination":[]})", "FORK_INVALID_PAYLOAD", "destination"},
      {R"({"payload":{},"destination":["a",3]})", "FORK_INVALID_PAYLOAD", "destination[1]"},
      {R"({"payload":{},"destination":""})", "FORK_INVALID_PAYLOAD", "destination"},
      {R"({"payload":{},"extra":1})", "FORK_INVALID_PAYLOAD", "extra"},
      {R"({"payload":{"a":{"b":[1,2,}}}})", "FORK_INVALID_PAYLOAD", "payload.a.b[2]"},
      {R"({"payload":{"odd key":[nul]}})", "FORK_INVALID_PAYLOAD", "payload[\"odd key\"][0]"},
      {R"({"payload":{"a":"\x01"}})", "FORK_INVALID_PAYLOAD", "payload.a"},
      {"{\"payload\":{\"a\":\"\xff\"}}", "FORK_INVALID_PAYLOAD", "payload.a"},
      {R"({"payload":{"a":1e999}})", "FORK_INVALID_PAYLOAD", "payload.a"},
      {R"({"payload":{}} {"payload":{}})", "FORK_INVALID_PAYLOAD", ""},
      {R"([])", "FORK_INVALID_PAYLOAD", ""},
      {R"()", "FORK_INVALID_PAYLOAD", ""},
      {R"([{"payload":{}},])", "FORK_INVALID_PAYLOAD", "[1]"},
      {R"(42)", "FORK_INVALID_PAYLOAD", ""},
  };
  for (const Case& c : cases) {
    const BodyError err = Refuse(c.body);
    INFO(c.body << " -> " << err.message);
    CHECK(std::string(err.code) == c.code);
    CHECK(err.path == c.path);
  }
}

TEST_CASE("http body: nesting past the wire's limit is refused, not recursed into",
          "[ingest][http]") {
  std::string deep = R"({"payload":{"a":)";
  for (int i = 0; i < 100000; ++i) deep += "[";
  const BodyError err = Refuse(deep);
  CHECK(err.message.find("nesting deeper than 64") != std::string::npos);
  std::string ok = R"({"payload":)";
  for (int i = 0; i < 63; ++i) ok += "{\"a\":";
  ok += "1";
  for (int i = 0; i < 63; ++i) ok += "}";
  ok += "}";
  Parse(ok);
}

TEST_CASE("http body: an event over max_event and a body of too many events are FORK_TOO_LARGE",
          "[ingest][http]") {
  EventLimits limits;
  limits.max_event = 100;
  const std::string big = R"([{"payload":{}},{"payload":{"s":")" + std::string(200, 'x') + "\"}}]";
  BodyError err = Refuse(big, BodyFormat::kJson, limits);
  CHECK(std::string(err.code) == "FORK_TOO_LARGE");
  CHECK(err.path == "[1]");
  limits = {};
  limits.max_events = 2;
  err = Refuse("{\"payload\":{}}\n{\"payload\":{}}\n{\"payload\":{}}\n", BodyFormat::kNdjson,
               limits);
  CHECK(std::string(err.code) == "FORK_TOO_LARGE");
  CHECK(err.path == "[2]");
}
