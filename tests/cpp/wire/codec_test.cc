// Frames: every type round-trips, and hostile frames (lying counts, deep
// nesting, truncation at every byte, oversize strings, trailing bytes, wrong
// version or type) are rejected with a message, never a crash or an overread.
#include "wire/codec.h"

#include <cstring>
#include <memory>

#include "test_util.h"

namespace forkd::wire {
namespace {

using test::Pack;
using test::U8;

std::string Str(const Buffer& b) { return std::string(b.view()); }

std::string Header(FrameType t) {
  return std::string{static_cast<char>(kProtocolVersion), static_cast<char>(t)};
}

Hello SampleHello() {
  Hello h;
  for (size_t i = 0; i < kClientIdSize; ++i) h.client_id[i] = static_cast<uint8_t>(0xa0 + i);
  h.protocol = 1;
  h.agent = "fork-router/0.1.0 node/22";
  return h;
}

std::string HelloFrame(const Hello& h = SampleHello()) {
  Buffer b;
  EncodeHello(h, &b);
  return Str(b);
}

Welcome SampleWelcome() {
  Welcome w;
  w.server = "forkd/0.1.0";
  w.max_frame = 12345678;
  w.max_event = 65536;
  w.destinations = {"logs", "audit", "warehouse"};
  return w;
}

std::string WelcomeFrame(const Welcome& w = SampleWelcome()) {
  Buffer b;
  EncodeWelcome(w, &b);
  return Str(b);
}

Ack SampleAck() {
  Ack a;
  a.ranges = {{1, 5}, {7, 7}, {9, 1000000}};
  a.routed = {{3, {"logs", "audit"}}, {7, {}}, {9, {"warehouse"}}};
  return a;
}

std::string AckFrame(const Ack& a = SampleAck()) {
  Buffer b;
  EncodeAck(a, &b);
  return Str(b);
}

Nack SampleNack() {
  Nack n;
  n.range = {10, 12};
  n.code = kCodeInvalidPayload;
  n.message = "event: payload must be a map (an object)";
  return n;
}

std::string NackFrame(const Nack& n = SampleNack()) {
  Buffer b;
  EncodeNack(n, &b);
  return Str(b);
}

std::string DeliveredFrame(const std::vector<SeqRange>& r = {{1, 2}, {4, 4}}) {
  Buffer b;
  EncodeDelivered(Delivered{r, {}}, &b);
  return Str(b);
}

// [destinations, key, options, payload]
std::string Event(const std::vector<std::string>& dests = {"logs"}, const char* key = "k-1",
                  bool with_options = true) {
  return Pack([&](Writer& w) {
    w.ArrayHeader(4);
    if (dests.empty()) {
      w.Nil();
    } else {
      w.ArrayHeader(static_cast<uint32_t>(dests.size()));
      for (const auto& d : dests) w.Str(d);
    }
    if (key != nullptr) {
      w.Str(key);
    } else {
      w.Nil();
    }
    if (with_options) {
      w.MapHeader(1);
      w.Str("timestamp");
      w.Timestamp(1700000000, 0);
    } else {
      w.Nil();
    }
    w.MapHeader(2);
    w.Str("user");
    w.Uint(42);
    w.Str("tags");
    w.ArrayHeader(2);
    w.Str("a");
    w.Str("b");
  });
}

struct RouteEntrySpec {
  uint8_t flags;
  std::string event;
};

std::string RouteFrame(uint64_t first_seq, const std::vector<RouteEntrySpec>& entries) {
  Buffer b;
  uint8_t* h = b.Grow(kRouteHeaderSize);
  WriteRouteHeader(h, first_seq, static_cast<uint32_t>(entries.size()));
  b.Commit(kRouteHeaderSize);
  for (const auto& e : entries) {
    AppendRouteEntry(&b, e.flags, U8(e.event), static_cast<uint32_t>(e.event.size()));
  }
  return Str(b);
}

std::string SampleRoute() {
  return RouteFrame(
      100, {{0, Event()}, {kFlagWantDelivered, Event({}, nullptr, false)}, {0, std::string()}});
}

// Runs every decoder over `frame` from an exact-size heap copy, so that an
// overread is an ASan error. Returns how many accepted it; every rejection
// must come with a message.
int DecodeWithAll(const std::string& frame) {
  std::unique_ptr<uint8_t[]> heap(new uint8_t[frame.size() + (frame.empty() ? 1 : 0)]);
  std::memcpy(heap.get(), frame.data(), frame.size());
  const uint8_t* p = heap.get();
  const size_t n = frame.size();
  int accepted = 0;
  auto count = [&](bool ok, const std::string& error) {
    if (ok) {
      ++accepted;
    } else {
      REQUIRE_FALSE(error.empty());
    }
  };
  std::string e;
  FrameType t;
  count(PeekHeader(p, n, &t, &e), e);
  {
    Hello h;
    e.clear();
    count(DecodeHello(p, n, &h, &e), e);
  }
  {
    Welcome w;
    e.clear();
    count(DecodeWelcome(p, n, &w, &e), e);
  }
  {
    Ack a;
    e.clear();
    count(DecodeAck(p, n, &a, &e), e);
  }
  {
    Nack k;
    e.clear();
    count(DecodeNack(p, n, &k, &e), e);
  }
  {
    Delivered r;
    e.clear();
    count(DecodeDelivered(p, n, &r, &e), e);
  }
  {
    std::vector<RouteEntry> r;
    e.clear();
    const bool ok = DecodeRoute(p, n, &r, &e);
    count(ok, e);
    if (ok) {
      for (const auto& entry : r) {
        REQUIRE(entry.event >= p);
        REQUIRE(entry.event + entry.size <= p + n);
        EventView v;
        std::string ee;
        if (!CheckEvent(entry.event, entry.size, Limits{}, &v, &ee)) REQUIRE_FALSE(ee.empty());
      }
    }
  }
  {
    EventView v;
    e.clear();
    count(CheckEvent(p, n, Limits{}, &v, &e), e);
  }
  return accepted;
}

}  // namespace

TEST_CASE("PeekHeader names the frame type and rejects other versions", "[wire][codec]") {
  std::string e;
  FrameType t;
  const std::pair<std::string, FrameType> frames[] = {
      {HelloFrame(), FrameType::kHello},  {WelcomeFrame(), FrameType::kWelcome},
      {SampleRoute(), FrameType::kRoute}, {AckFrame(), FrameType::kAck},
      {NackFrame(), FrameType::kNack},    {DeliveredFrame(), FrameType::kDelivered},
  };
  for (const auto& [frame, type] : frames) {
    REQUIRE(PeekHeader(U8(frame), frame.size(), &t, &e));
    CHECK(t == type);
  }
  CHECK_FALSE(PeekHeader(nullptr, 0, &t, &e));
  CHECK(e == "frame shorter than its 2-byte header");
  CHECK_FALSE(PeekHeader(U8(std::string("\x01")), 1, &t, &e));
  CHECK(e == "frame shorter than its 2-byte header");
  CHECK_FALSE(PeekHeader(U8(std::string("\x02\x01")), 2, &t, &e));
  CHECK(e == "unsupported protocol version 2 (this side speaks 1)");
  CHECK_FALSE(PeekHeader(U8(std::string("\x00\x01", 2)), 2, &t, &e));
  CHECK(e == "unsupported protocol version 0 (this side speaks 1)");
  CHECK_FALSE(PeekHeader(U8(std::string("\x01\x00", 2)), 2, &t, &e));
  CHECK(e == "unknown frame type 0");
  CHECK_FALSE(PeekHeader(U8(std::string("\x01\x07")), 2, &t, &e));
  CHECK(e == "unknown frame type 7");
  CHECK_FALSE(PeekHeader(U8(std::string("\x01\xff")), 2, &t, &e));
  CHECK(e == "unknown frame type 255");
}

TEST_CASE("every frame type round-trips", "[wire][codec]") {
  std::string e;
  SECTION("hello") {
    const Hello in = SampleHello();
    const std::string f = HelloFrame(in);
    Hello out;
    REQUIRE(DecodeHello(U8(f), f.size(), &out, &e));
    CHECK(std::memcmp(out.client_id, in.client_id, kClientIdSize) == 0);
    CHECK(out.protocol == in.protocol);
    CHECK(out.agent == in.agent);
    Hello empty_agent = in;
    empty_agent.agent = "";
    const std::string f2 = HelloFrame(empty_agent);
    REQUIRE(DecodeHello(U8(f2), f2.size(), &out, &e));
    CHECK(out.agent.empty());
    CHECK_FALSE(out.has_session);
    Hello with_session = in;
    with_session.has_session = true;
    for (size_t i = 0; i < kClientIdSize; ++i) with_session.session[i] = static_cast<uint8_t>(0xa0 + i);
    const std::string f3 = HelloFrame(with_session);
    REQUIRE(DecodeHello(U8(f3), f3.size(), &out, &e));
    CHECK(out.has_session);
    CHECK(std::memcmp(out.session, with_session.session, kClientIdSize) == 0);
    // A session that is not 16 bytes of bin is an error.
    Buffer bad;
    bad.Append(reinterpret_cast<const uint8_t*>("\x01\x01"), 2);
    Writer w(&bad);
    w.MapHeader(2);
    w.Str("client");
    w.Bin(in.client_id, kClientIdSize);
    w.Str("session");
    w.Str("short");
    CHECK_FALSE(DecodeHello(bad.data(), bad.size(), &out, &e));
    CHECK(e == "hello: session must be 16 bytes of bin");
  }
  SECTION("welcome") {
    for (const Welcome& in : {SampleWelcome(), Welcome{}}) {
      const std::string f = WelcomeFrame(in);
      Welcome out;
      out.destinations = {"stale"};
      REQUIRE(DecodeWelcome(U8(f), f.size(), &out, &e));
      CHECK(out.protocol == in.protocol);
      CHECK(out.server == in.server);
      CHECK(out.max_frame == in.max_frame);
      CHECK(out.max_event == in.max_event);
      CHECK(out.destinations == in.destinations);
    }
  }
  SECTION("ack, with and without the routed trailer") {
    for (const Ack& in : {SampleAck(), Ack{{{1, 1}}, {}}, Ack{}}) {
      const std::string f = AckFrame(in);
      Ack out;
      REQUIRE(DecodeAck(U8(f), f.size(), &out, &e));
      REQUIRE(out.ranges.size() == in.ranges.size());
      for (size_t i = 0; i < in.ranges.size(); ++i) {
        CHECK(out.ranges[i].first == in.ranges[i].first);
        CHECK(out.ranges[i].last == in.ranges[i].last);
      }
      REQUIRE(out.routed.size() == in.routed.size());
      for (size_t i = 0; i < in.routed.size(); ++i) {
        CHECK(out.routed[i].seq == in.routed[i].seq);
        CHECK(out.routed[i].destinations == in.routed[i].destinations);
      }
    }
  }
  SECTION("nack") {
    Nack in = SampleNack();
    in.message = std::string(60000, 'm');
    for (const Nack& n : {SampleNack(), in}) {
      const std::string f = NackFrame(n);
      Nack out;
      REQUIRE(DecodeNack(U8(f), f.size(), &out, &e));
      CHECK(out.range.first == n.range.first);
      CHECK(out.range.last == n.range.last);
      CHECK(out.code == n.code);
      CHECK(out.message == n.message);
    }
  }
  SECTION("delivered") {
    std::vector<SeqRange> many;
    for (uint64_t i = 0; i < 1000; ++i) many.push_back({i * 10 + 1, i * 10 + 5});
    for (const auto& in : {std::vector<SeqRange>{}, std::vector<SeqRange>{{1, 2}, {4, 4}}, many}) {
      const std::string f = DeliveredFrame(in);
      CHECK(f.size() == kHeaderSize + 4 + 16 * in.size());
      Delivered out;
      REQUIRE(DecodeDelivered(U8(f), f.size(), &out, &e));
      REQUIRE(out.ranges.size() == in.size());
      CHECK(out.outcomes.empty());
      for (size_t i = 0; i < in.size(); ++i) {
        CHECK(out.ranges[i].first == in[i].first);
        CHECK(out.ranges[i].last == in[i].last);
      }
    }
  }
  SECTION("route") {
    const std::vector<RouteEntrySpec> specs = {
        {0, Event()}, {kFlagWantDelivered, Event({}, nullptr, false)}, {0, ""}, {0x80, "xyz"}};
    const std::string f = RouteFrame(7, specs);
    std::vector<RouteEntry> out;
    REQUIRE(DecodeRoute(U8(f), f.size(), &out, &e));
    REQUIRE(out.size() == specs.size());
    for (size_t i = 0; i < specs.size(); ++i) {
      CHECK(out[i].seq == 7 + i);
      CHECK(out[i].flags == specs[i].flags);
      CHECK(std::string(reinterpret_cast<const char*>(out[i].event), out[i].size) ==
            specs[i].event);
    }
  }
}

TEST_CASE("a frame cut at every byte is rejected with a message", "[wire][codec]") {
  struct Kind {
    const char* name;
    std::string frame;
    std::function<bool(const uint8_t*, size_t, std::string*)> decode;
  };
  const std::vector<Kind> kinds = {
      {"hello", HelloFrame(),
       [](const uint8_t* p, size_t n, std::string* e) {
         Hello h;
         return DecodeHello(p, n, &h, e);
       }},
      {"welcome", WelcomeFrame(),
       [](const uint8_t* p, size_t n, std::string* e) {
         Welcome w;
         return DecodeWelcome(p, n, &w, e);
       }},
      {"ack", AckFrame(),
       [](const uint8_t* p, size_t n, std::string* e) {
         Ack a;
         return DecodeAck(p, n, &a, e);
       }},
      {"nack", NackFrame(),
       [](const uint8_t* p, size_t n, std::string* e) {
         Nack k;
         return DecodeNack(p, n, &k, e);
       }},
      {"delivered", DeliveredFrame(),
       [](const uint8_t* p, size_t n, std::string* e) {
         Delivered r;
         return DecodeDelivered(p, n, &r, e);
       }},
      {"route", SampleRoute(),
       [](const uint8_t* p, size_t n, std::string* e) {
         std::vector<RouteEntry> r;
         return DecodeRoute(p, n, &r, e);
       }},
  };
  // An ack without its optional trailer is whole: the one cut that is valid.
  const size_t ack_without_trailer = kHeaderSize + 4 + 16 * SampleAck().ranges.size();
  for (const Kind& k : kinds) {
    for (size_t n = 0; n < k.frame.size(); ++n) {
      // Exact-size heap copy: reading past the cut is an ASan error.
      std::unique_ptr<uint8_t[]> heap(new uint8_t[n + 1]);
      std::memcpy(heap.get(), k.frame.data(), n);
      std::string e;
      const bool ok = k.decode(heap.get(), n, &e);
      INFO(k.name << " cut to " << n << " of " << k.frame.size() << " bytes: " << e);
      if (std::string(k.name) == "ack" && n == ack_without_trailer) {
        CHECK(ok);
        continue;
      }
      CHECK_FALSE(ok);
      CHECK_FALSE(e.empty());
    }
  }
}

TEST_CASE("decoders check the frame header themselves", "[wire][codec]") {
  std::string e;
  Hello h;
  Welcome w;
  Ack a;
  Nack k;
  Delivered d;
  std::vector<RouteEntry> r;
  // Each decoder given each other frame type, and its own with version 2.
  const std::string frames[] = {HelloFrame(), WelcomeFrame(),   AckFrame(),
                                NackFrame(),  DeliveredFrame(), SampleRoute()};
  for (size_t i = 0; i < 6; ++i) {
    for (size_t j = 0; j < 6; ++j) {
      std::string f = frames[j];
      if (i == j) f[0] = 2;
      INFO("decoder " << i << " given frame " << j);
      e.clear();
      bool ok = false;
      switch (i) {
        case 0:
          ok = DecodeHello(U8(f), f.size(), &h, &e);
          break;
        case 1:
          ok = DecodeWelcome(U8(f), f.size(), &w, &e);
          break;
        case 2:
          ok = DecodeAck(U8(f), f.size(), &a, &e);
          break;
        case 3:
          ok = DecodeNack(U8(f), f.size(), &k, &e);
          break;
        case 4:
          ok = DecodeDelivered(U8(f), f.size(), &d, &e);
          break;
        case 5:
          ok = DecodeRoute(U8(f), f.size(), &r, &e);
          break;
      }
      CHECK_FALSE(ok);
      CHECK_FALSE(e.empty());
      if (i == j) CHECK_THAT(e, Catch::Contains("unsupported protocol version 2"));
    }
  }
}

TEST_CASE("hostile hello and welcome bodies", "[wire][codec]") {
  std::string e;
  Hello h;
  Welcome w;
  auto hello = [&](const std::string& body) {
    const std::string f = Header(FrameType::kHello) + body;
    e.clear();
    return DecodeHello(U8(f), f.size(), &h, &e);
  };
  auto welcome = [&](const std::string& body) {
    const std::string f = Header(FrameType::kWelcome) + body;
    e.clear();
    return DecodeWelcome(U8(f), f.size(), &w, &e);
  };
  const std::string id(16, '\x07');
  auto client = [&](Writer& wr) {
    wr.Str("client");
    wr.Bin(id.data(), id.size());
  };

  SECTION("a map header claiming 2^32-1 entries") {
    CHECK_FALSE(hello(std::string("\xdf\xff\xff\xff\xff", 5)));
    CHECK(e == "hello: array or map with more entries than the limit at byte 0");
    // Within the entry limit but past the bytes there are.
    CHECK_FALSE(hello(std::string("\xdf\x00\x00\x10\x00\xc0\xc0", 7)));
    CHECK(e == "hello: truncated: container claims more entries than bytes remain at byte 0");
    CHECK_FALSE(welcome(std::string("\xdf\xff\xff\xff\xff", 5)));
    CHECK_THAT(e, Catch::StartsWith("welcome: "));
  }
  SECTION("10 000 levels of nesting") {
    const std::string deep = Pack([&](Writer& wr) {
      wr.MapHeader(2);
      client(wr);
      wr.Str("extra");
      for (int i = 0; i < 10000; ++i) wr.ArrayHeader(1);
      wr.Nil();
    });
    CHECK_FALSE(hello(deep));
    CHECK_THAT(e, Catch::StartsWith("hello: nesting deeper than the limit at byte "));
    CHECK_FALSE(welcome(deep));
    CHECK_THAT(e, Catch::Contains("nesting deeper than the limit"));
  }
  SECTION("an agent string longer than control frames allow") {
    const std::string body = Pack([&](Writer& wr) {
      wr.MapHeader(2);
      client(wr);
      wr.Str("agent");
      wr.Str(std::string(70000, 'a'));
    });
    CHECK_FALSE(hello(body));
    CHECK_THAT(e, Catch::Contains("longer than the limit"));
  }
  SECTION("a string that claims more bytes than there are") {
    CHECK_FALSE(hello(std::string("\x81\xdb\x7f\xff\xff\xff", 6) + "client"));
    CHECK_THAT(e, Catch::StartsWith("hello: "));
  }
  SECTION("trailing bytes after the body") {
    const std::string body = Pack([&](Writer& wr) {
      wr.MapHeader(1);
      client(wr);
    });
    REQUIRE(hello(body));
    CHECK_FALSE(hello(body + "\xc0"));
    CHECK_THAT(e, Catch::Contains("trailing"));
    const std::string wf = WelcomeFrame().substr(kHeaderSize);
    REQUIRE(welcome(wf));
    CHECK_FALSE(welcome(wf + "\x01\x02"));
    CHECK_THAT(e, Catch::Contains("trailing"));
  }
  SECTION("wrong shapes") {
    CHECK_FALSE(hello(""));
    CHECK_THAT(e, Catch::StartsWith("hello: truncated"));
    CHECK_FALSE(hello(Pack([](Writer& wr) { wr.ArrayHeader(0); })));
    CHECK(e == "hello: body must be a map");
    CHECK_FALSE(hello(Pack([](Writer& wr) { wr.MapHeader(0); })));
    CHECK(e == "hello: missing client id");
    CHECK_FALSE(hello(Pack([&](Writer& wr) {
      wr.MapHeader(1);
      wr.Str("client");
      wr.Bin(id.data(), 15);
    })));
    CHECK(e == "hello: client id must be 16 bytes of bin");
    CHECK_FALSE(hello(Pack([&](Writer& wr) {
      wr.MapHeader(1);
      wr.Str("client");
      wr.Str(id);
    })));
    CHECK(e == "hello: client id must be 16 bytes of bin");
    CHECK_FALSE(hello(Pack([&](Writer& wr) {
      wr.MapHeader(2);
      client(wr);
      wr.Str("protocol");
      wr.Str("1");
    })));
    CHECK(e == "hello: protocol must be an unsigned integer");
    CHECK_FALSE(welcome(Pack([](Writer& wr) {
      wr.MapHeader(1);
      wr.Str("destinations");
      wr.ArrayHeader(2);
      wr.Str("ok");
      wr.ArrayHeader(0);
    })));
    CHECK(e == "welcome: destinations must be strings");
  }
  SECTION("unknown keys, of any shape, are skipped") {
    REQUIRE(hello(Pack([&](Writer& wr) {
      wr.MapHeader(4);
      wr.Str("future");
      wr.MapHeader(1);
      wr.Str("x");
      wr.ArrayHeader(2);
      wr.Uint(1);
      wr.Uint(2);
      client(wr);
      wr.Uint(7);  // a key that is not a string
      wr.Nil();
      wr.Str("agent");
      wr.Str("me");
    })));
    CHECK(h.agent == "me");
    CHECK(std::memcmp(h.client_id, id.data(), 16) == 0);
    REQUIRE(welcome(Pack([](Writer& wr) {
      wr.MapHeader(3);
      wr.Str("limits");
      wr.MapHeader(1);
      wr.Str("depth");
      wr.ArrayHeader(1);
      wr.Uint(64);
      wr.Str("server");
      wr.Str("forkd/9");
      wr.Str("max_frame");
      wr.Uint(1024);
    })));
    CHECK(w.server == "forkd/9");
    CHECK(w.max_frame == 1024);
  }
  SECTION("containers where keys or scalars belong do not derail the reader") {
    // Keys that are maps or arrays; an agent that is an array. Whatever the
    // decoder answers, it must stay inside the bytes (ASan) and say why.
    const std::vector<std::string> bodies = {
        Pack([&](Writer& wr) {
          wr.MapHeader(2);
          wr.ArrayHeader(3);
          wr.Uint(1);
          wr.Uint(2);
          wr.Uint(3);
          wr.Nil();
          client(wr);
        }),
        Pack([&](Writer& wr) {
          wr.MapHeader(2);
          client(wr);
          wr.Str("agent");
          wr.MapHeader(2);
          wr.Str("a");
          wr.Str("b");
          wr.Str("c");
          wr.ArrayHeader(1);
          wr.Nil();
        }),
        Pack([&](Writer& wr) {
          wr.MapHeader(2);
          wr.MapHeader(1);
          wr.Str("client");
          wr.Bin(id.data(), 16);
          wr.Nil();
          wr.Str("x");
          wr.Nil();
        }),
    };
    for (const auto& body : bodies) {
      const std::string f = Header(FrameType::kHello) + body;
      std::unique_ptr<uint8_t[]> heap(new uint8_t[f.size()]);
      std::memcpy(heap.get(), f.data(), f.size());
      e.clear();
      if (!DecodeHello(heap.get(), f.size(), &h, &e)) CHECK_FALSE(e.empty());
      const std::string wf = Header(FrameType::kWelcome) + body;
      std::memcpy(heap.get(), wf.data(), wf.size());
      e.clear();
      if (!DecodeWelcome(heap.get(), wf.size(), &w, &e)) CHECK_FALSE(e.empty());
    }
  }
}

TEST_CASE("hostile ack, nack and delivered frames", "[wire][codec]") {
  std::string e;
  Ack a;
  Nack n;
  Delivered d;
  auto ranges = [](uint32_t count, std::vector<SeqRange> rs) {
    std::string s(4, '\0');
    PutU32(reinterpret_cast<uint8_t*>(s.data()), count);
    for (const auto& r : rs) {
      std::string p(16, '\0');
      PutU64(reinterpret_cast<uint8_t*>(p.data()), r.first);
      PutU64(reinterpret_cast<uint8_t*>(p.data()) + 8, r.last);
      s += p;
    }
    return s;
  };
  auto ack = [&](const std::string& body) {
    const std::string f = Header(FrameType::kAck) + body;
    e.clear();
    return DecodeAck(U8(f), f.size(), &a, &e);
  };
  auto delivered = [&](const std::string& body) {
    const std::string f = Header(FrameType::kDelivered) + body;
    e.clear();
    return DecodeDelivered(U8(f), f.size(), &d, &e);
  };
  auto nack = [&](const std::string& body) {
    const std::string f = Header(FrameType::kNack) + body;
    e.clear();
    return DecodeNack(U8(f), f.size(), &n, &e);
  };

  SECTION("a range count that lies") {
    CHECK_FALSE(ack(ranges(UINT32_MAX, {{1, 2}})));
    CHECK(e == "ack: range count 4294967295 exceeds frame");
    CHECK_FALSE(ack(ranges(2, {{1, 2}})));
    CHECK(e == "ack: range count 2 exceeds frame");
    CHECK_FALSE(delivered(ranges(UINT32_MAX, {})));
    CHECK(e == "delivered: range count 4294967295 exceeds frame");
    CHECK_FALSE(delivered(ranges(1, {{1, 2}}).substr(0, 19)));
    CHECK_FALSE(delivered("\x01"));
    CHECK(e == "delivered: truncated range count");
  }
  SECTION("a range that runs backwards") {
    CHECK_FALSE(ack(ranges(2, {{1, 2}, {9, 8}})));
    CHECK(e == "ack: range with last < first");
    CHECK_FALSE(delivered(ranges(1, {{5, 4}})));
    CHECK(e == "delivered: range with last < first");
    std::string body = ranges(1, {{5, 4}}).substr(4);
    body += Pack([](Writer& w) {
      w.ArrayHeader(2);
      w.Str(kCodeRejected);
      w.Str("x");
    });
    CHECK_FALSE(nack(body));
    CHECK(e == "nack: range with last < first");
  }
  SECTION("trailing bytes") {
    // A count smaller than the ranges that follow leaves bytes that are
    // neither ranges nor a trailer.
    CHECK_FALSE(delivered(ranges(1, {{1, 2}, {3, 4}})));
    CHECK_THAT(e, Catch::Contains("trailing"));
    CHECK_FALSE(ack(AckFrame().substr(kHeaderSize) + "\xc0"));
    CHECK_THAT(e, Catch::Contains("trailing"));
    CHECK_FALSE(nack(NackFrame().substr(kHeaderSize) + std::string(1, '\0')));
    CHECK_THAT(e, Catch::Contains("trailing"));
  }
  SECTION("a malformed routed trailer") {
    const std::string base = ranges(1, {{1, 1}});
    CHECK_FALSE(ack(base + Pack([](Writer& w) { w.MapHeader(0); })));
    CHECK(e == "ack: routed trailer must be an array");
    CHECK_FALSE(ack(base + Pack([](Writer& w) {
                      w.ArrayHeader(1);
                      w.ArrayHeader(3);
                      w.Uint(1);
                      w.ArrayHeader(0);
                      w.Nil();
                    })));
    CHECK(e == "ack: routed entry must be [seq, [names]]");
    CHECK_FALSE(ack(base + Pack([](Writer& w) {
                      w.ArrayHeader(1);
                      w.ArrayHeader(2);
                      w.Int(-1);
                      w.ArrayHeader(0);
                    })));
    CHECK(e == "ack: routed entry must be [seq, [names]]");
    CHECK_FALSE(ack(base + Pack([](Writer& w) {
                      w.ArrayHeader(1);
                      w.ArrayHeader(2);
                      w.Uint(1);
                      w.ArrayHeader(2);
                      w.Str("ok");
                      w.Uint(3);
                    })));
    CHECK(e == "ack: routed destination names must be strings");
    CHECK_FALSE(ack(base + std::string("\xdd\xff\xff\xff\xff", 5)));
    CHECK_THAT(e, Catch::StartsWith("ack routed trailer: "));
    CHECK_FALSE(ack(base + std::string(5000, '\x91') + "\xc0"));
    CHECK_THAT(e, Catch::Contains("nesting deeper than the limit"));
  }
  SECTION("a nack body that is not [code, message]") {
    const std::string range = ranges(1, {{1, 1}}).substr(4);
    CHECK_FALSE(nack(range.substr(0, 15)));
    CHECK(e == "nack: truncated range");
    CHECK_FALSE(nack(range));
    CHECK_THAT(e, Catch::StartsWith("nack: truncated"));
    for (const std::string& body : {Pack([](Writer& w) { w.MapHeader(0); }), Pack([](Writer& w) {
                                      w.ArrayHeader(2);
                                      w.Uint(1);
                                      w.Str("m");
                                    }),
                                    Pack([](Writer& w) {
                                      w.ArrayHeader(2);
                                      w.Str("c");
                                      w.Nil();
                                    }),
                                    Pack([](Writer& w) {
                                      w.ArrayHeader(3);
                                      w.Str("c");
                                      w.Str("m");
                                      w.Str("x");
                                    })}) {
      CHECK_FALSE(nack(range + body));
      CHECK(e == "nack: body must be [code, message]");
    }
  }
}

TEST_CASE("hostile route frames", "[wire][codec]") {
  std::string e;
  std::vector<RouteEntry> out;
  auto decode = [&](const std::string& f) {
    e.clear();
    std::unique_ptr<uint8_t[]> heap(new uint8_t[f.size() + 1]);
    std::memcpy(heap.get(), f.data(), f.size());
    return DecodeRoute(heap.get(), f.size(), &out, &e);
  };
  const std::string ev = Event();
  const std::string good = RouteFrame(5, {{0, ev}, {0, ev}});
  REQUIRE(decode(good));
  auto with_count = [&](uint32_t count) {
    std::string f = good;
    PutU32(reinterpret_cast<uint8_t*>(f.data()) + 10, count);
    return f;
  };

  CHECK_FALSE(decode(good.substr(0, kRouteHeaderSize - 1)));
  CHECK(e == "route: frame shorter than its 14-byte header");
  CHECK_FALSE(decode(with_count(0)));
  CHECK(e == "route: empty batch");
  CHECK_FALSE(decode(with_count(3)));
  CHECK_THAT(e, Catch::StartsWith("route: entry 2"));
  CHECK_FALSE(decode(with_count(UINT32_MAX)));
  CHECK(e == "route: count 4294967295 exceeds what the frame can hold");
  CHECK_FALSE(decode(with_count(1)));
  CHECK(e == "route: " + std::to_string(kRouteEntryHeaderSize + ev.size()) +
                 " trailing bytes after the last entry");
  CHECK_FALSE(decode(good + "x"));
  CHECK(e == "route: 1 trailing bytes after the last entry");

  SECTION("sequence numbers start at 1") {
    std::string f = good;
    PutU64(reinterpret_cast<uint8_t*>(f.data()) + 2, 0);
    CHECK_FALSE(decode(f));
    CHECK(e == "route: sequence numbers start at 1");
  }
  SECTION("sequence numbers may not wrap past 2^64-1") {
    CHECK(decode(RouteFrame(UINT64_MAX, {{0, ev}})));
    CHECK(out[0].seq == UINT64_MAX);
    CHECK(decode(RouteFrame(UINT64_MAX - 1, {{0, ev}, {0, ev}})));
    CHECK_FALSE(decode(RouteFrame(UINT64_MAX, {{0, ev}, {0, ev}})));
    CHECK_THAT(e, Catch::StartsWith("route: "));
  }
  SECTION("an entry length that lies") {
    std::string f = good;
    PutU32(reinterpret_cast<uint8_t*>(f.data()) + kRouteHeaderSize + 1, UINT32_MAX);
    CHECK_FALSE(decode(f));
    CHECK(e == "route: entry 0 claims 4294967295 bytes, " +
                   std::to_string(f.size() - kRouteHeaderSize - kRouteEntryHeaderSize) + " remain");
    f = good;
    PutU32(reinterpret_cast<uint8_t*>(f.data()) + kRouteHeaderSize + 1,
           static_cast<uint32_t>(ev.size() + 1));
    CHECK_FALSE(decode(f));
    CHECK_THAT(e, Catch::StartsWith("route: entry 1"));
  }
  SECTION("a wrong version or type") {
    std::string f = good;
    f[0] = 9;
    CHECK_FALSE(decode(f));
    CHECK_THAT(e, Catch::Contains("unsupported protocol version 9"));
    f = good;
    f[1] = static_cast<char>(FrameType::kHello);
    CHECK_FALSE(decode(f));
    CHECK_FALSE(e.empty());
  }
}

TEST_CASE("CheckEvent splits a valid event into its parts", "[wire][codec]") {
  std::string e;
  EventView v;
  SECTION("destinations, key and options given") {
    const std::string ev = Event({"logs", "audit"}, "order-17");
    REQUIRE(CheckEvent(U8(ev), ev.size(), Limits{}, &v, &e));
    CHECK(v.has_dests);
    CHECK(v.dest_count == 2);
    Reader d(v.dests, v.dests_size);
    CHECK(d.Next().len == 2);
    CHECK(d.Next().str() == "logs");
    CHECK(d.Next().str() == "audit");
    CHECK(d.AtEnd());
    CHECK(v.has_key);
    CHECK(v.key == "order-17");
    Reader o(v.options, v.options_size);
    CHECK(o.Next().kind == Kind::kMap);
    o.Skip();
    o.Skip();
    CHECK(o.AtEnd());
    CHECK(v.payload + v.payload_size == U8(ev) + ev.size());
    Reader p(v.payload, v.payload_size);
    const Value m = p.Next();
    CHECK(m.kind == Kind::kMap);
    CHECK(m.len == 2);
  }
  SECTION("everything optional left nil") {
    const std::string ev = Event({}, nullptr, false);
    REQUIRE(CheckEvent(U8(ev), ev.size(), Limits{}, &v, &e));
    CHECK_FALSE(v.has_dests);
    CHECK(v.dest_count == 0);
    CHECK(v.dests_size == 1);
    CHECK_FALSE(v.has_key);
    CHECK(v.key.empty());
    CHECK(v.options_size == 1);
    CHECK(*v.options == 0xc0);
  }
}

TEST_CASE("CheckEvent rejects malformed events with a message", "[wire][codec]") {
  std::string e;
  EventView v;
  auto check = [&](const std::string& ev, const Limits& lim = Limits{}) {
    e.clear();
    std::unique_ptr<uint8_t[]> heap(new uint8_t[ev.size() + 1]);
    std::memcpy(heap.get(), ev.data(), ev.size());
    return CheckEvent(heap.get(), ev.size(), lim, &v, &e);
  };
  auto event =
      [](const std::function<void(Writer&)>& dests, const std::function<void(Writer&)>& key,
         const std::function<void(Writer&)>& options, const std::function<void(Writer&)>& payload) {
        return Pack([&](Writer& w) {
          w.ArrayHeader(4);
          dests(w);
          key(w);
          options(w);
          payload(w);
        });
      };
  auto nil = [](Writer& w) { w.Nil(); };
  auto empty_map = [](Writer& w) { w.MapHeader(0); };

  CHECK(check(event(nil, nil, nil, empty_map)));
  CHECK_FALSE(check(Pack([](Writer& w) { w.MapHeader(0); })));
  CHECK(e == "event: must be the array [destinations, key, options, payload]");
  CHECK_FALSE(check(Pack([](Writer& w) {
    w.ArrayHeader(3);
    w.Nil();
    w.Nil();
    w.MapHeader(0);
  })));
  CHECK(e == "event: must be the array [destinations, key, options, payload]");
  CHECK_FALSE(check(event([](Writer& w) { w.ArrayHeader(0); }, nil, nil, empty_map)));
  CHECK(e == "event: destinations must not be an empty array");
  CHECK_FALSE(check(event(
      [](Writer& w) {
        w.ArrayHeader(2);
        w.Str("a");
        w.Uint(1);
      },
      nil, nil, empty_map)));
  CHECK(e == "event: destinations[1] must be a non-empty string");
  CHECK_FALSE(check(event(
      [](Writer& w) {
        w.ArrayHeader(1);
        w.Str("");
      },
      nil, nil, empty_map)));
  CHECK(e == "event: destinations[0] must be a non-empty string");
  CHECK_FALSE(check(event([](Writer& w) { w.Str("logs"); }, nil, nil, empty_map)));
  CHECK(e == "event: destinations must be nil or an array of strings");
  CHECK_FALSE(check(event(
      nil, [](Writer& w) { w.Uint(5); }, nil, empty_map)));
  CHECK(e == "event: key must be nil or a string");
  CHECK_FALSE(check(event(
      nil, nil, [](Writer& w) { w.ArrayHeader(0); }, empty_map)));
  CHECK(e == "event: options must be nil or a map");
  CHECK_FALSE(check(event(nil, nil, nil, [](Writer& w) { w.ArrayHeader(0); })));
  CHECK(e == "event: payload must be a map (an object)");
  CHECK_FALSE(check(event(nil, nil, nil, nil)));
  CHECK(e == "event: payload must be a map (an object)");

  SECTION("trailing bytes") {
    CHECK_FALSE(check(event(nil, nil, nil, empty_map) + "\xc0\xc0"));
    CHECK(e == "event: 2 trailing bytes after the event");
  }
  SECTION("strings at and past max_string") {
    Limits lim;
    lim.max_string = 100;
    auto with = [&](size_t n) {
      return event(nil, nil, nil, [n](Writer& w) {
        w.MapHeader(1);
        w.Str("s");
        w.Str(std::string(n, 'x'));
      });
    };
    CHECK(check(with(100), lim));
    CHECK_FALSE(check(with(101), lim));
    CHECK_THAT(
        e, Catch::StartsWith("event: string, binary or extension longer than the limit at byte "));
    // A key counts as a string too.
    const std::string long_key(101, 'k');
    CHECK_FALSE(check(event(
                          nil, [&](Writer& w) { w.Str(long_key); }, nil, empty_map),
                      lim));
  }
  SECTION("nesting at and past max_depth, and 10 000 deep") {
    Limits lim;
    lim.max_depth = 10;
    // The event array is level 1 and the payload map level 2.
    auto nested = [&](int levels) {
      return event(nil, nil, nil, [levels](Writer& w) {
        w.MapHeader(1);
        w.Str("a");
        for (int i = 0; i < levels; ++i) w.ArrayHeader(1);
        w.Nil();
      });
    };
    CHECK(check(nested(8), lim));
    CHECK_FALSE(check(nested(9), lim));
    CHECK_THAT(e, Catch::StartsWith("event: nesting deeper than the limit at byte "));
    CHECK_FALSE(check(nested(10000)));
    CHECK_THAT(e, Catch::StartsWith("event: nesting deeper than the limit"));
  }
  SECTION("a payload map claiming 2^32-1 entries") {
    CHECK_FALSE(check(std::string("\x94\xc0\xc0\xc0\xdf\xff\xff\xff\xff", 9)));
    CHECK(e == "event: array or map with more entries than the limit at byte 4");
    Limits lim;
    lim.max_container = UINT32_MAX;
    CHECK_FALSE(check(std::string("\x94\xc0\xc0\xc0\xdf\xff\xff\xff\xff", 9), lim));
    CHECK(e == "event: truncated: container claims more entries than bytes remain at byte 4");
  }
  SECTION("cut at every byte") {
    const std::string ev = Event({"logs", "audit"}, "key");
    for (size_t n = 0; n < ev.size(); ++n) {
      INFO("cut to " << n);
      CHECK_FALSE(check(ev.substr(0, n)));
      CHECK_FALSE(e.empty());
    }
  }
}

TEST_CASE("CheckStoredEvent takes every form ingest stores, past narrowed limits",
          "[wire][codec]") {
  std::string e;
  // A client's event is a stored one too.
  const std::string plain = Event({"logs", "audit"}, "k");
  CHECK(CheckStoredEvent(U8(plain), plain.size(), &e));
  const std::string routed = Pack([](Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(3);
    w.Nil();  // the routes chose
    w.Str("logs");
    w.ArrayHeader(3);  // [name, template...]
    w.Str("audit");
    w.Str("clean");
    w.Str("story");
    w.Nil();
    w.Nil();
    w.MapHeader(1);
    w.Str("s");
    w.Str(std::string(70000, 'x'));  // longer than today's default max_string
  });
  INFO(e);
  CHECK(CheckStoredEvent(U8(routed), routed.size(), &e));
  // A name's entry must hold names only.
  const std::string bad = Pack([](Writer& w) {
    w.ArrayHeader(4);
    w.ArrayHeader(1);
    w.ArrayHeader(2);
    w.Str("audit");
    w.MapHeader(0);
    w.Nil();
    w.Nil();
    w.MapHeader(0);
  });
  CHECK_FALSE(CheckStoredEvent(U8(bad), bad.size(), &e));
  CHECK(e == "stored event: destinations[0] must be a name, nil or [name, template...]");
}

TEST_CASE("Value::str is empty for a kind that has no bytes", "[wire][msgpack]") {
  // A map's len counts entries: read as bytes it would point at nothing.
  const std::string m = Pack([](Writer& w) {
    w.MapHeader(5);
    for (int i = 0; i < 10; ++i) w.Nil();
  });
  Reader r(U8(m), m.size());
  const Value v = r.Next();
  CHECK(v.kind == Kind::kMap);
  CHECK(v.len == 5);
  CHECK(v.str().empty());
  CHECK(v.str() != "field");
}

TEST_CASE("random damage to any frame is rejected or decoded, never a crash", "[wire][codec]") {
  test::Rng rng(99);
  const std::vector<std::string> frames = {HelloFrame(), WelcomeFrame(),   AckFrame(),
                                           NackFrame(),  DeliveredFrame(), SampleRoute(),
                                           Event()};
  int accepted = 0;
  for (int iter = 0; iter < 20000; ++iter) {
    std::string f = frames[rng.Uniform(frames.size())];
    switch (rng.Uniform(4)) {
      case 0:  // flip bytes
        for (uint64_t k = 0, n = 1 + rng.Uniform(3); k < n; ++k) {
          f[rng.Uniform(f.size())] = static_cast<char>(rng.Next() >> 56);
        }
        break;
      case 1:  // cut
        f.resize(rng.Uniform(f.size()));
        break;
      case 2:  // insert
        f.insert(rng.Uniform(f.size() + 1), rng.Bytes(1 + rng.Uniform(8)));
        break;
      default:  // random bytes after a valid header
        f = f.substr(0, 2) + rng.Bytes(rng.Uniform(64));
    }
    accepted += DecodeWithAll(f);
  }
  CHECK(accepted > 0);
}

TEST_CASE("FormatEventId is client hex, '-', decimal sequence", "[wire][codec]") {
  uint8_t id[kClientIdSize];
  for (size_t i = 0; i < kClientIdSize; ++i) id[i] = static_cast<uint8_t>(i * 17);
  CHECK(FormatEventId(id, 0) == "00112233445566778899aabbccddeeff-0");
  CHECK(FormatEventId(id, 42) == "00112233445566778899aabbccddeeff-42");
  const std::string max = FormatEventId(id, UINT64_MAX);
  CHECK(max == "00112233445566778899aabbccddeeff-18446744073709551615");
  CHECK(max.size() == kMaxEventIdSize);
  char buf[kMaxEventIdSize];
  CHECK(FormatEventIdTo(id, 7, buf) == 34);
  CHECK(std::string(buf, 34) == "00112233445566778899aabbccddeeff-7");
}

TEST_CASE("ParseEventId reads back what FormatEventId writes and refuses any other string",
          "[wire][codec]") {
  uint8_t id[kClientIdSize];
  for (size_t i = 0; i < kClientIdSize; ++i) id[i] = static_cast<uint8_t>(i * 17 + 3);
  for (uint64_t seq : {uint64_t{0}, uint64_t{7}, uint64_t{1} << 40, UINT64_MAX}) {
    CAPTURE(seq);
    uint8_t got[kClientIdSize] = {};
    uint64_t got_seq = 1;
    REQUIRE(ParseEventId(FormatEventId(id, seq), got, &got_seq));
    CHECK(std::equal(got, got + kClientIdSize, id));
    CHECK(got_seq == seq);
  }
  const std::string ok = "00112233445566778899aabbccddeeff";
  uint8_t c[kClientIdSize];
  uint64_t s = 0;
  for (const std::string& bad : {std::string(), ok, ok + "-", ok + "_1", ok + "-1a", ok + "-+1",
                                 ok + "-18446744073709551616",  // 2^64
                                 ok + "-1" + std::string(20, '0'),  // too long
                                 std::string("00112233445566778899AABBCCDDEEFF-1"),  // not as written
                                 ok.substr(1) + "-12", std::string("order-1234")}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseEventId(bad, c, &s));
  }
}

TEST_CASE("RouteReader checks a route frame's framing, then reads its entries one by one",
          "[wire][codec]") {
  const std::string ev = Event();
  const std::string f = RouteFrame(41, {{1, ev}, {0, ""}, {0, ev}});
  RouteReader reader;
  std::string e;
  REQUIRE(reader.Open(U8(f), f.size(), &e));
  CHECK(reader.first_seq() == 41);
  CHECK(reader.count() == 3);
  RouteEntry entry;
  REQUIRE(reader.Next(&entry));
  CHECK((entry.seq == 41 && entry.flags == 1 && entry.size == ev.size()));
  CHECK(std::string(reinterpret_cast<const char*>(entry.event), entry.size) == ev);
  REQUIRE(reader.Next(&entry));
  CHECK((entry.seq == 42 && entry.size == 0));
  REQUIRE(reader.Next(&entry));
  CHECK((entry.seq == 43 && entry.size == ev.size()));
  CHECK_FALSE(reader.Next(&entry));

  // A bad frame is refused by Open, before any entry is read.
  std::string cut = f.substr(0, f.size() - 1);
  CHECK_FALSE(reader.Open(U8(cut), cut.size(), &e));
  CHECK_THAT(e, Catch::StartsWith("route: entry 2 claims"));
  CHECK_FALSE(reader.Next(&entry));

  // DecodeRoute, built on it, returns every entry of 1 MiB of empty ones.
  const uint32_t n = (1u << 20) / kRouteEntryHeaderSize;
  std::string big(kRouteHeaderSize + size_t{n} * kRouteEntryHeaderSize, '\0');
  WriteRouteHeader(reinterpret_cast<uint8_t*>(big.data()), 1, n);
  std::vector<RouteEntry> out;
  REQUIRE(DecodeRoute(U8(big), big.size(), &out, &e));
  CHECK(out.size() == n);
  CHECK(out.back().seq == n);
}

}  // namespace forkd::wire
