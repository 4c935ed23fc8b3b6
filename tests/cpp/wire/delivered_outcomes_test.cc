// The delivered frame's outcomes trailer and the hello/welcome flags that
// turn it on: it round-trips, and hostile trailers are rejected with a
// message that says what and where.
#include <cstring>
#include <memory>

#include "test_util.h"
#include "wire/codec.h"

namespace forkd::wire {
namespace {

using test::Pack;
using test::U8;

std::string Str(const Buffer& b) { return std::string(b.view()); }

Delivered Sample() {
  Delivered d;
  d.ranges = {{9, 9}, {1, 5}};  // any order: the trailer's seqs are checked against all
  d.outcomes = {
      {2, {{"analytics", OutcomeKind::kFiltered, ""}}},
      {9,
       {{"audit", OutcomeKind::kDeadLetter, "validate: amount: not a number"},
        {"logs", OutcomeKind::kShed, "shed: backlog over its quota (10 entries, 900 bytes held)"}}},
  };
  return d;
}

std::string Frame(const Delivered& d) {
  Buffer b;
  EncodeDelivered(d, &b);
  return Str(b);
}

// The ranges part of a delivered frame, header included.
std::string RangesPart(const std::vector<SeqRange>& rs) { return Frame(Delivered{rs, {}}); }

bool Decode(const std::string& f, Delivered* d, std::string* e) {
  // Exact-size heap copy: reading past the end is an ASan error.
  std::unique_ptr<uint8_t[]> heap(new uint8_t[f.size() + 1]);
  std::memcpy(heap.get(), f.data(), f.size());
  e->clear();
  return DecodeDelivered(heap.get(), f.size(), d, e);
}

TEST_CASE("a delivered frame's outcomes trailer round-trips", "[wire][codec][outcomes]") {
  const Delivered in = Sample();
  const std::string f = Frame(in);
  Delivered out;
  std::string e;
  REQUIRE(Decode(f, &out, &e));
  REQUIRE(out.ranges.size() == 2);
  CHECK(out.ranges[1].first == 1);
  CHECK(out.ranges[1].last == 5);
  REQUIRE(out.outcomes.size() == 2);
  for (size_t i = 0; i < in.outcomes.size(); ++i) {
    CHECK(out.outcomes[i].seq == in.outcomes[i].seq);
    REQUIRE(out.outcomes[i].outcomes.size() == in.outcomes[i].outcomes.size());
    for (size_t j = 0; j < in.outcomes[i].outcomes.size(); ++j) {
      const DestinationOutcome& a = in.outcomes[i].outcomes[j];
      const DestinationOutcome& b = out.outcomes[i].outcomes[j];
      CHECK(b.destination == a.destination);
      CHECK(b.kind == a.kind);
      CHECK(b.reason == a.reason);
    }
  }
  // Without outcomes the frame is what it always was: ranges only.
  CHECK(RangesPart({{1, 5}}).size() == kHeaderSize + 4 + 16);
  // A decoder reused for a frame without a trailer forgets the last one.
  REQUIRE(Decode(RangesPart({{1, 5}}), &out, &e));
  CHECK(out.outcomes.empty());
}

TEST_CASE("outcome names and descriptions", "[wire][codec][outcomes]") {
  CHECK(std::string(OutcomeName(OutcomeKind::kDelivered)) == "delivered");
  CHECK(std::string(OutcomeName(OutcomeKind::kFiltered)) == "filtered");
  CHECK(std::string(OutcomeName(OutcomeKind::kDeadLetter)) == "dead_letter");
  CHECK(std::string(OutcomeName(OutcomeKind::kShed)) == "shed");
  CHECK(DescribeOutcome({"audit", OutcomeKind::kDeadLetter, "validate: amount: not a number"}) ==
        "destination 'audit' did not store the event (dead_letter): "
        "validate: amount: not a number");
  CHECK(DescribeOutcome({"logs", OutcomeKind::kShed, ""}) ==
        "destination 'logs' did not store the event (shed)");
}

TEST_CASE("hello and welcome say whether outcomes are spoken", "[wire][codec][outcomes]") {
  std::string e;
  Hello h;
  h.agent = "test";
  for (bool flag : {false, true}) {
    h.outcomes = flag;
    Buffer b;
    EncodeHello(h, &b);
    Hello out;
    out.outcomes = !flag;
    REQUIRE(DecodeHello(b.data(), b.size(), &out, &e));
    CHECK(out.outcomes == flag);
    Welcome w;
    w.outcomes = flag;
    Buffer wb;
    EncodeWelcome(w, &wb);
    Welcome wout;
    REQUIRE(DecodeWelcome(wb.data(), wb.size(), &wout, &e));
    CHECK(wout.outcomes == flag);
  }
  // A hello without the key (an older client) asks for none.
  Buffer b;
  h.outcomes = false;
  EncodeHello(h, &b);
  CHECK(Str(b).find("outcomes") == std::string::npos);

  auto hello = [&](const std::string& value) {
    const std::string f = std::string{static_cast<char>(kProtocolVersion),
                                      static_cast<char>(FrameType::kHello)} +
                          Pack([&](Writer& w) {
                            w.MapHeader(2);
                            w.Str("client");
                            const uint8_t id[kClientIdSize] = {1};
                            w.Bin(id, kClientIdSize);
                            w.Str("outcomes");
                          }) +
                          value;
    Hello out;
    e.clear();
    return DecodeHello(U8(f), f.size(), &out, &e);
  };
  CHECK(hello(Pack([](Writer& w) { w.Bool(true); })));
  CHECK_FALSE(hello(Pack([](Writer& w) { w.Uint(1); })));
  CHECK(e == "hello: outcomes must be a boolean");
  CHECK_FALSE(hello(Pack([](Writer& w) { w.Str("yes"); })));
  CHECK(e == "hello: outcomes must be a boolean");

  const std::string wf = std::string{static_cast<char>(kProtocolVersion),
                                     static_cast<char>(FrameType::kWelcome)} +
                         Pack([](Writer& w) {
                           w.MapHeader(1);
                           w.Str("outcomes");
                           w.Str("true");
                         });
  Welcome wout;
  CHECK_FALSE(DecodeWelcome(U8(wf), wf.size(), &wout, &e));
  CHECK(e == "welcome: outcomes must be a boolean");
}

TEST_CASE("hostile outcomes trailers are rejected with a message", "[wire][codec][outcomes]") {
  std::string e;
  Delivered d;
  const std::string base = RangesPart({{1, 5}, {9, 9}});
  auto trailer = [&](const std::function<void(Writer&)>& fill) {
    return Decode(base + Pack(fill), &d, &e);
  };
  auto one = [](Writer& w, uint64_t seq, const char* dest, const char* word, const char* reason) {
    w.ArrayHeader(2);
    w.Uint(seq);
    w.ArrayHeader(1);
    w.ArrayHeader(3);
    w.Str(dest);
    w.Str(word);
    w.Str(reason);
  };

  SECTION("the trailer is not an array") {
    CHECK_FALSE(trailer([](Writer& w) { w.MapHeader(0); }));
    CHECK(e == "delivered: outcomes trailer must be an array");
  }
  SECTION("an entry is not [seq, [...]]") {
    CHECK_FALSE(trailer([](Writer& w) {
      w.ArrayHeader(1);
      w.ArrayHeader(3);
      w.Uint(2);
      w.ArrayHeader(0);
      w.Nil();
    }));
    CHECK(e == "delivered: outcomes[0] must be [seq, [[destination, outcome, reason]...]]");
    CHECK_FALSE(trailer([](Writer& w) {
      w.ArrayHeader(1);
      w.ArrayHeader(2);
      w.Int(-2);
      w.ArrayHeader(0);
    }));
    CHECK(e == "delivered: outcomes[0] must be [seq, [[destination, outcome, reason]...]]");
  }
  SECTION("a seq the ranges do not settle") {
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(1);
      one(w, 7, "logs", "filtered", "");
    }));
    CHECK(e == "delivered: outcomes[0]: seq 7 is in none of the frame's ranges");
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(1);
      one(w, 0, "logs", "filtered", "");
    }));
    CHECK(e == "delivered: outcomes[0]: seq 0 is in none of the frame's ranges");
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(1);
      one(w, UINT64_MAX, "logs", "filtered", "");
    }));
    CHECK_THAT(e, Catch::Contains("is in none of the frame's ranges"));
  }
  SECTION("seqs out of order or repeated") {
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(2);
      one(w, 3, "logs", "filtered", "");
      one(w, 3, "audit", "filtered", "");
    }));
    CHECK(e == "delivered: outcomes[1]: seq 3 does not follow seq 3 (they must increase)");
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(2);
      one(w, 9, "logs", "filtered", "");
      one(w, 2, "logs", "filtered", "");
    }));
    CHECK(e == "delivered: outcomes[1]: seq 2 does not follow seq 9 (they must increase)");
  }
  SECTION("no destinations, or more than an event can have") {
    CHECK_FALSE(trailer([](Writer& w) {
      w.ArrayHeader(1);
      w.ArrayHeader(2);
      w.Uint(2);
      w.ArrayHeader(0);
    }));
    CHECK(e == "delivered: outcomes[0]: names 0 destinations (1 to 64)");
    CHECK_FALSE(trailer([](Writer& w) {
      w.ArrayHeader(1);
      w.ArrayHeader(2);
      w.Uint(2);
      w.ArrayHeader(kMaxOutcomesPerEvent + 1);
      for (uint32_t i = 0; i <= kMaxOutcomesPerEvent; ++i) {
        w.ArrayHeader(3);
        w.Str("d" + std::to_string(i));
        w.Str("filtered");
        w.Str("");
      }
    }));
    CHECK(e == "delivered: outcomes[0]: names 65 destinations (1 to 64)");
  }
  SECTION("a destination entry that is not three strings") {
    CHECK_FALSE(trailer([](Writer& w) {
      w.ArrayHeader(1);
      w.ArrayHeader(2);
      w.Uint(2);
      w.ArrayHeader(1);
      w.ArrayHeader(2);
      w.Str("logs");
      w.Str("filtered");
    }));
    CHECK(e == "delivered: outcomes[0][0] must be [destination, outcome, reason], all strings");
    CHECK_FALSE(trailer([](Writer& w) {
      w.ArrayHeader(1);
      w.ArrayHeader(2);
      w.Uint(2);
      w.ArrayHeader(1);
      w.ArrayHeader(3);
      w.Str("logs");
      w.Str("filtered");
      w.Nil();
    }));
    CHECK(e == "delivered: outcomes[0][0] must be [destination, outcome, reason], all strings");
  }
  SECTION("an empty destination name") {
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(1);
      one(w, 2, "", "filtered", "");
    }));
    CHECK(e == "delivered: outcomes[0][0]: empty destination name");
  }
  SECTION("an outcome word this side does not know, or 'delivered'") {
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(1);
      one(w, 2, "logs", "lost", "");
    }));
    CHECK(e == "delivered: outcomes[0][0]: unknown outcome 'lost' (filtered, dead_letter or shed)");
    // The trailer lists only what was not plainly delivered.
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(1);
      one(w, 2, "logs", "delivered", "");
    }));
    CHECK(e ==
          "delivered: outcomes[0][0]: unknown outcome 'delivered' (filtered, dead_letter or shed)");
  }
  SECTION("a destination named twice for one event") {
    CHECK_FALSE(trailer([](Writer& w) {
      w.ArrayHeader(1);
      w.ArrayHeader(2);
      w.Uint(2);
      w.ArrayHeader(2);
      for (int i = 0; i < 2; ++i) {
        w.ArrayHeader(3);
        w.Str("logs");
        w.Str(i == 0 ? "filtered" : "shed");
        w.Str("");
      }
    }));
    CHECK(e == "delivered: outcomes[0][1]: destination 'logs' named twice");
  }
  SECTION("bytes after the trailer") {
    CHECK_FALSE(Decode(Frame(Sample()) + std::string(1, '\0'), &d, &e));
    CHECK_THAT(e, Catch::Contains("trailing bytes"));
  }
  SECTION("lengths that lie or exceed the limits") {
    // An array header claiming 2^32 - 1 entries costs nothing.
    CHECK_FALSE(Decode(base + std::string("\xdd\xff\xff\xff\xff", 5), &d, &e));
    CHECK_THAT(e, Catch::StartsWith("delivered outcomes trailer: "));
    // A reason longer than a control frame's strings may be.
    const std::string long_reason(70000, 'r');
    CHECK_FALSE(trailer([&](Writer& w) {
      w.ArrayHeader(1);
      one(w, 2, "logs", "dead_letter", long_reason.c_str());
    }));
    CHECK_THAT(e, Catch::StartsWith("delivered outcomes trailer: "));
  }
}

TEST_CASE("a delivered frame with outcomes cut at every byte", "[wire][codec][outcomes]") {
  const std::string f = Frame(Sample());
  const size_t ranges_end = kHeaderSize + 4 + 16 * Sample().ranges.size();
  for (size_t n = 0; n < f.size(); ++n) {
    Delivered d;
    std::string e;
    const bool ok = Decode(f.substr(0, n), &d, &e);
    INFO("cut to " << n << " of " << f.size() << ": " << e);
    if (n == ranges_end) {
      CHECK(ok);  // the ranges without their optional trailer
      continue;
    }
    CHECK_FALSE(ok);
    CHECK_FALSE(e.empty());
  }
}

}  // namespace
}  // namespace forkd::wire
