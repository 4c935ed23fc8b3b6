// msgpack primitives: the writer's smallest encodings, the reader, and the
// validator against hostile bytes (lying lengths, deep nesting, truncation).
#include "wire/msgpack.h"

#include <cmath>
#include <limits>

#include "test_util.h"

namespace forkd::wire {
namespace {

using test::Pack;
using test::U8;

CheckResult Check(const std::string& bytes, size_t* consumed, const Limits& limits = Limits{}) {
  return CheckValue(U8(bytes), bytes.size(), limits, consumed);
}

bool Valid(const std::string& bytes, const Limits& limits = Limits{}) {
  size_t used = 0;
  return Check(bytes, &used, limits).ok && used == bytes.size();
}

std::string Nested(size_t depth, uint8_t header = 0x91, const std::string& inner = "\xc0") {
  return std::string(depth, static_cast<char>(header)) + inner;
}

std::string Hex(const std::string& s) {
  static const char k[] = "0123456789abcdef";
  std::string out;
  for (unsigned char c : s) {
    out.push_back(k[c >> 4]);
    out.push_back(k[c & 15]);
  }
  return out;
}

// A value using every kind, nested.
std::string Everything() {
  return Pack([](Writer& w) {
    w.MapHeader(12);
    w.Str("nil");
    w.Nil();
    w.Str("t");
    w.Bool(true);
    w.Str("ints");
    w.ArrayHeader(6);
    w.Int(-1);
    w.Int(-200);
    w.Int(INT64_MIN);
    w.Uint(5);
    w.Uint(300);
    w.Uint(UINT64_MAX);
    w.Str("d");
    w.Double(2.5);
    w.Str(std::string(40, 's'));
    w.Str(std::string(300, 'x'));
    w.Str("bin");
    w.Bin("\x00\x01\x02", 3);
    w.Str("ts");
    w.Timestamp(1700000000, 123456789);
    w.Str("empty");
    w.ArrayHeader(0);
    w.Str("map");
    w.MapHeader(1);
    w.Uint(1);
    w.ArrayHeader(2);
    w.Nil();
    w.Bool(false);
    w.Str("big array");
    w.ArrayHeader(20);
    for (int i = 0; i < 20; ++i) w.Int(i - 10);
    w.Str("fixext");
    w.Raw("\xd4\x05\x07", 3);  // fixext1 type 5
    w.Str("float32");
    w.Raw("\xca\x3f\xc0\x00\x00", 5);  // 1.5f
  });
}

}  // namespace

TEST_CASE("Writer uses the smallest encoding of each integer", "[wire][msgpack]") {
  struct Case {
    int64_t v;
    size_t size;
    uint8_t first;
  };
  const Case signed_cases[] = {
      {0, 1, 0x00},
      {127, 1, 0x7f},
      {-1, 1, 0xff},
      {-32, 1, 0xe0},
      {-33, 2, 0xd0},
      {-128, 2, 0xd0},
      {-129, 3, 0xd1},
      {-32768, 3, 0xd1},
      {-32769, 5, 0xd2},
      {INT32_MIN, 5, 0xd2},
      {int64_t{INT32_MIN} - 1, 9, 0xd3},
      {INT64_MIN, 9, 0xd3},
      {128, 2, 0xcc},
      {INT64_MAX, 9, 0xcf},
  };
  for (const Case& c : signed_cases) {
    const std::string b = Pack([&](Writer& w) { w.Int(c.v); });
    INFO(c.v << " -> " << Hex(b));
    CHECK(b.size() == c.size);
    CHECK(static_cast<uint8_t>(b[0]) == c.first);
    REQUIRE(Valid(b));
    Reader r(U8(b), b.size());
    const Value v = r.Next();
    CHECK(v.i == c.v);
    CHECK(r.AtEnd());
  }
  const struct {
    uint64_t v;
    size_t size;
    uint8_t first;
  } unsigned_cases[] = {
      {127, 1, 0x7f},        {128, 2, 0xcc},
      {255, 2, 0xcc},        {256, 3, 0xcd},
      {65535, 3, 0xcd},      {65536, 5, 0xce},
      {UINT32_MAX, 5, 0xce}, {uint64_t{UINT32_MAX} + 1, 9, 0xcf},
      {UINT64_MAX, 9, 0xcf},
  };
  for (const auto& c : unsigned_cases) {
    const std::string b = Pack([&](Writer& w) { w.Uint(c.v); });
    INFO(c.v << " -> " << Hex(b));
    CHECK(b.size() == c.size);
    CHECK(static_cast<uint8_t>(b[0]) == c.first);
    REQUIRE(Valid(b));
    Reader r(U8(b), b.size());
    const Value v = r.Next();
    CHECK(v.kind == Kind::kUint);
    CHECK(v.u == c.v);
  }
}

TEST_CASE("Writer's strings, binaries and containers at each size class", "[wire][msgpack]") {
  const struct {
    uint32_t n;
    uint8_t str, bin, arr, map;
    size_t header;   // str header size
    size_t bheader;  // bin header size
    size_t cheader;  // container header size
  } cases[] = {
      {0, 0xa0, 0xc4, 0x90, 0x80, 1, 2, 1},     {15, 0xaf, 0xc4, 0x9f, 0x8f, 1, 2, 1},
      {16, 0xb0, 0xc4, 0xdc, 0xde, 1, 2, 3},    {31, 0xbf, 0xc4, 0xdc, 0xde, 1, 2, 3},
      {32, 0xd9, 0xc4, 0xdc, 0xde, 2, 2, 3},    {255, 0xd9, 0xc4, 0xdc, 0xde, 2, 2, 3},
      {256, 0xda, 0xc5, 0xdc, 0xde, 3, 3, 3},   {65535, 0xda, 0xc5, 0xdc, 0xde, 3, 3, 3},
      {65536, 0xdb, 0xc6, 0xdd, 0xdf, 5, 5, 5},
  };
  for (const auto& c : cases) {
    INFO("n = " << c.n);
    const std::string payload(c.n, 'p');
    const std::string s = Pack([&](Writer& w) { w.Str(payload); });
    CHECK(static_cast<uint8_t>(s[0]) == c.str);
    CHECK(s.size() == c.header + c.n);
    const std::string b = Pack([&](Writer& w) { w.Bin(payload.data(), payload.size()); });
    CHECK(static_cast<uint8_t>(b[0]) == c.bin);
    CHECK(b.size() == c.bheader + c.n);
    const std::string a = Pack([&](Writer& w) {
      w.ArrayHeader(c.n);
      for (uint32_t i = 0; i < c.n; ++i) w.Nil();
    });
    CHECK(static_cast<uint8_t>(a[0]) == c.arr);
    CHECK(a.size() == c.cheader + c.n);
    const std::string m = Pack([&](Writer& w) {
      w.MapHeader(c.n);
      for (uint32_t i = 0; i < 2 * c.n; ++i) w.Nil();
    });
    CHECK(static_cast<uint8_t>(m[0]) == c.map);

    const Limits big{64, 1u << 20, 1u << 20};
    REQUIRE(Valid(s, big));
    REQUIRE(Valid(b, big));
    REQUIRE(Valid(a, big));
    REQUIRE(Valid(m, big));
    Reader rs(U8(s), s.size());
    Value v = rs.Next();
    CHECK(v.kind == Kind::kStr);
    CHECK(v.str() == payload);
    CHECK(rs.AtEnd());
    Reader rb(U8(b), b.size());
    v = rb.Next();
    CHECK(v.kind == Kind::kBin);
    CHECK(v.len == c.n);
    Reader ra(U8(a), a.size());
    v = ra.Next();
    CHECK(v.kind == Kind::kArray);
    CHECK(v.len == c.n);
    Reader rm(U8(m), m.size());
    v = rm.Next();
    CHECK(v.kind == Kind::kMap);
    CHECK(v.len == c.n);
  }
}

TEST_CASE("Reader reads back every kind of value", "[wire][msgpack]") {
  const std::string b = Everything();
  size_t used = 0;
  REQUIRE(Check(b, &used).ok);
  REQUIRE(used == b.size());
  Reader r(U8(b), b.size());
  Value v = r.Next();
  REQUIRE(v.kind == Kind::kMap);
  REQUIRE(v.len == 12);
  auto key = [&](const char* k) {
    const Value kv = r.Next();
    REQUIRE(kv.kind == Kind::kStr);
    REQUIRE(kv.str() == k);
  };
  key("nil");
  CHECK(r.Next().kind == Kind::kNil);
  key("t");
  v = r.Next();
  CHECK((v.kind == Kind::kBool && v.b));
  key("ints");
  CHECK(r.Next().len == 6);
  v = r.Next();
  CHECK((v.kind == Kind::kInt && v.i == -1));
  v = r.Next();
  CHECK((v.kind == Kind::kInt && v.i == -200));
  v = r.Next();
  CHECK((v.kind == Kind::kInt && v.i == INT64_MIN));
  v = r.Next();
  CHECK((v.kind == Kind::kUint && v.u == 5 && v.i == 5));
  v = r.Next();
  CHECK((v.kind == Kind::kUint && v.u == 300));
  v = r.Next();
  CHECK((v.kind == Kind::kUint && v.u == UINT64_MAX));
  key("d");
  v = r.Next();
  CHECK((v.kind == Kind::kFloat && v.f == 2.5));
  key(std::string(40, 's').c_str());
  // Peek does not move.
  const uint8_t* at = r.pos();
  CHECK(r.Peek().str() == std::string(300, 'x'));
  CHECK(r.pos() == at);
  CHECK(r.Next().str() == std::string(300, 'x'));
  key("bin");
  v = r.Next();
  CHECK(v.kind == Kind::kBin);
  CHECK(std::string(reinterpret_cast<const char*>(v.ptr), v.len) == std::string("\0\1\2", 3));
  key("ts");
  v = r.Next();
  CHECK(v.kind == Kind::kExt);
  CHECK(v.ext_type == -1);
  int64_t sec = 0;
  uint32_t ns = 0;
  REQUIRE(DecodeTimestamp(v, &sec, &ns));
  CHECK(sec == 1700000000);
  CHECK(ns == 123456789);
  key("empty");
  CHECK(r.Next().len == 0);
  key("map");
  // Skip walks a whole container.
  r.Skip();
  key("big array");
  v = r.Next();
  CHECK(v.len == 20);
  for (int i = 0; i < 20; ++i) CHECK(r.Next().i == i - 10);
  key("fixext");
  v = r.Next();
  CHECK(v.kind == Kind::kExt);
  CHECK(v.ext_type == 5);
  CHECK(v.len == 1);
  CHECK(v.ptr[0] == 7);
  key("float32");
  v = r.Next();
  CHECK(v.kind == Kind::kFloat);
  CHECK(v.f == 1.5);
  CHECK(r.AtEnd());

  // Skip of the whole value lands at its end.
  Reader whole(U8(b), b.size());
  whole.Skip();
  CHECK(whole.pos() == U8(b) + b.size());
}

TEST_CASE("timestamps in all three msgpack forms", "[wire][msgpack]") {
  auto decode = [](const std::string& b, int64_t* s, uint32_t* ns) {
    REQUIRE(Valid(b));
    Reader r(U8(b), b.size());
    return DecodeTimestamp(r.Next(), s, ns);
  };
  int64_t s;
  uint32_t ns;
  // timestamp 32: fixext4, seconds only.
  REQUIRE(decode(std::string("\xd6\xff\x65\x53\xf1\x00", 6), &s, &ns));
  CHECK(s == 0x6553f100);
  CHECK(ns == 0);
  // timestamp 64: fixext8, 30 bits of nanoseconds, 34 of seconds.
  const uint64_t x = (uint64_t{999999999} << 34) | 0x3ffffffffull;
  std::string t64 = "\xd7\xff";
  for (int i = 7; i >= 0; --i) t64.push_back(static_cast<char>(x >> (8 * i)));
  REQUIRE(decode(t64, &s, &ns));
  CHECK(s == 0x3ffffffffll);
  CHECK(ns == 999999999);
  // timestamp 96, as the writer makes it; negative seconds too.
  REQUIRE(decode(Pack([](Writer& w) { w.Timestamp(-1, 5); }), &s, &ns));
  CHECK(s == -1);
  CHECK(ns == 5);
  // Other extension types and sizes are not timestamps.
  CHECK_FALSE(decode(std::string("\xd6\x01\x00\x00\x00\x00", 6), &s, &ns));
  CHECK_FALSE(decode(std::string("\xd5\xff\x00\x00", 4), &s, &ns));
  CHECK_FALSE(decode(std::string("\xc0", 1), &s, &ns));
}

TEST_CASE("doubles keep every bit", "[wire][msgpack]") {
  for (double d : {0.0, -0.0, 1e-310, 3.141592653589793, -1e308, std::nan(""),
                   std::numeric_limits<double>::infinity()}) {
    const std::string b = Pack([&](Writer& w) { w.Double(d); });
    REQUIRE(b.size() == 9);
    Reader r(U8(b), b.size());
    const Value v = r.Next();
    CHECK(std::memcmp(&v.f, &d, 8) == 0);
  }
}

TEST_CASE("CheckValue: every proper prefix of a value is truncated", "[wire][msgpack]") {
  const std::string b = Everything();
  for (size_t n = 0; n < b.size(); ++n) {
    size_t used = 12345;
    const CheckResult r = Check(b.substr(0, n), &used);
    INFO("prefix of " << n << " bytes: " << r.reason);
    REQUIRE_FALSE(r.ok);
    REQUIRE(r.offset <= n);
    REQUIRE(std::string(r.reason).rfind("truncated", 0) == 0);
    REQUIRE(used == 12345);  // untouched on failure
  }
  // Bytes after the value are not part of it.
  size_t used = 0;
  REQUIRE(Check(b + "\x01\x02", &used).ok);
  CHECK(used == b.size());
}

TEST_CASE("CheckValue rejects hostile headers before allocating anything", "[wire][msgpack]") {
  size_t used = 0;
  SECTION("a map header claiming 2^32-1 entries") {
    const std::string b("\xdf\xff\xff\xff\xff\xc0\xc0", 7);
    const CheckResult r = Check(b, &used, Limits{64, UINT32_MAX, 1u << 20});
    REQUIRE_FALSE(r.ok);
    CHECK(std::string(r.reason) == "truncated: container claims more entries than bytes remain");
    CHECK(r.offset == 0);
    // Within the default limits it is refused by the limit first.
    const CheckResult l = Check(b, &used);
    REQUIRE_FALSE(l.ok);
    CHECK(std::string(l.reason) == "array or map with more entries than the limit");
  }
  SECTION("an array header claiming 2^32-1 entries, nested") {
    const std::string b("\x92\x01\xdd\xff\xff\xff\xff", 7);
    const CheckResult r = Check(b, &used, Limits{64, UINT32_MAX, 1u << 20});
    REQUIRE_FALSE(r.ok);
    CHECK(r.offset == 2);
  }
  SECTION("a map that claims just one entry more than its bytes") {
    // 3 entries need at least 6 bytes; 5 are there.
    const std::string b("\x83\x01\x02\x03\x04\x05", 6);
    const CheckResult r = Check(b, &used);
    REQUIRE_FALSE(r.ok);
    CHECK(std::string(r.reason) == "truncated: container claims more entries than bytes remain");
  }
  SECTION("string, binary and extension lengths of 2^32-1") {
    for (const char* h : {"\xdb", "\xc6"}) {
      const std::string b = std::string(h, 1) + std::string("\xff\xff\xff\xff", 4) + "abc";
      const CheckResult r = Check(b, &used);
      REQUIRE_FALSE(r.ok);
      CHECK(std::string(r.reason) == "string, binary or extension longer than the limit");
      const CheckResult nolimit = Check(b, &used, Limits{64, 1u << 20, UINT32_MAX});
      REQUIRE_FALSE(nolimit.ok);
      CHECK(std::string(nolimit.reason) == "truncated: body expected");
    }
    const std::string ext = std::string("\xc9\xff\xff\xff\xff\x01", 6) + "abc";
    CHECK_FALSE(Check(ext, &used).ok);
    CHECK_FALSE(Check(ext, &used, Limits{64, 1u << 20, UINT32_MAX}).ok);
  }
  SECTION("10 000 levels of nesting") {
    for (uint8_t header : {uint8_t{0x91}, uint8_t{0x81}}) {
      // Arrays of one element; maps of one entry whose key is the next map.
      const std::string b = header == 0x91 ? Nested(10000) : [] {
        std::string s;
        for (int i = 0; i < 10000; ++i) s += "\x81";
        s += "\xc0";
        for (int i = 0; i < 10000; ++i) s += "\xc0";
        return s;
      }();
      const CheckResult r = Check(b, &used);
      REQUIRE_FALSE(r.ok);
      CHECK(std::string(r.reason) == "nesting deeper than the limit");
      CHECK(r.offset == 64);  // the 65th container
      // Even with a huge limit the validator's own ceiling holds.
      const CheckResult h = Check(b, &used, Limits{UINT32_MAX, 1u << 20, 1u << 20});
      REQUIRE_FALSE(h.ok);
      CHECK(h.offset == kMaxCheckDepth);
    }
  }
  SECTION("the 0xc1 type byte") {
    const CheckResult r = Check(std::string("\x92\x01\xc1", 3), &used);
    REQUIRE_FALSE(r.ok);
    CHECK(std::string(r.reason) == "invalid type byte 0xc1");
    CHECK(r.offset == 2);
  }
  SECTION("truncated length fields") {
    using namespace std::string_view_literals;
    for (std::string_view b :
         {"\xd9"sv, "\xda\x00"sv, "\xdb\x00\x00\x00"sv, "\xc4"sv, "\xc5\x00"sv, "\xc6\x00\x00"sv,
          "\xc7\x01"sv, "\xc8\x00\x01"sv, "\xc9\x00\x00\x00\x01"sv, "\xdc\x00"sv,
          "\xdd\x00\x00\x00"sv, "\xde\x00"sv, "\xdf\x00\x00"sv}) {
      const std::string s(b);
      INFO(Hex(s));
      const CheckResult r = Check(s, &used);
      REQUIRE_FALSE(r.ok);
      CHECK(std::string(r.reason) == "truncated: length expected");
    }
  }
  SECTION("empty input") {
    const CheckResult r = CheckValue(nullptr, 0, Limits{}, &used);
    REQUIRE_FALSE(r.ok);
    CHECK(std::string(r.reason) == "truncated: value expected");
  }
}

TEST_CASE("CheckValue enforces each limit exactly at its edge", "[wire][msgpack]") {
  const Limits lim{5, 10, 20};
  CHECK(Valid(Nested(5), lim));
  CHECK_FALSE(Valid(Nested(6), lim));
  // Empty containers do not nest anything.
  CHECK(Valid(Nested(5, 0x91, "\x90"), lim));
  CHECK(Valid(Pack([](Writer& w) {
                w.ArrayHeader(10);
                for (int i = 0; i < 10; ++i) w.Nil();
              }),
              lim));
  CHECK_FALSE(Valid(Pack([](Writer& w) {
                      w.ArrayHeader(11);
                      for (int i = 0; i < 11; ++i) w.Nil();
                    }),
                    lim));
  // A map's limit counts entries, not keys and values.
  CHECK(Valid(Pack([](Writer& w) {
                w.MapHeader(10);
                for (int i = 0; i < 20; ++i) w.Nil();
              }),
              lim));
  CHECK_FALSE(Valid(Pack([](Writer& w) {
                      w.MapHeader(11);
                      for (int i = 0; i < 22; ++i) w.Nil();
                    }),
                    lim));
  CHECK(Valid(Pack([](Writer& w) { w.Str(std::string(20, 'a')); }), lim));
  CHECK_FALSE(Valid(Pack([](Writer& w) { w.Str(std::string(21, 'a')); }), lim));
  CHECK(Valid(Pack([](Writer& w) { w.Bin(std::string(20, 'a').data(), 20); }), lim));
  CHECK_FALSE(Valid(Pack([](Writer& w) { w.Bin(std::string(21, 'a').data(), 21); }), lim));
}

TEST_CASE("CheckValue on random and mutated bytes never reads past them", "[wire][msgpack]") {
  // Under ASan an overread is a crash; here, a value that validates must also
  // be walkable by the Reader to exactly its consumed length.
  test::Rng rng(2024);
  const std::string seed = Everything();
  size_t valid = 0;
  for (int iter = 0; iter < 30000; ++iter) {
    std::string b;
    if (iter % 2 == 0) {
      b = rng.Bytes(1 + rng.Uniform(40));
    } else {
      b = seed.substr(0, 1 + rng.Uniform(seed.size()));
      for (uint64_t k = 0, n = 1 + rng.Uniform(4); k < n; ++k) {
        b[rng.Uniform(b.size())] = static_cast<char>(rng.Next() >> 56);
      }
    }
    // Exact-size heap copy, so ASan sees a read past the end.
    std::unique_ptr<uint8_t[]> heap(new uint8_t[b.size()]);
    std::memcpy(heap.get(), b.data(), b.size());
    size_t used = 0;
    const CheckResult r = CheckValue(heap.get(), b.size(), Limits{}, &used);
    if (!r.ok) {
      REQUIRE(r.offset < b.size() + 1);
      REQUIRE(std::strlen(r.reason) > 0);
      continue;
    }
    ++valid;
    REQUIRE(used <= b.size());
    Reader rd(heap.get(), used);
    rd.Skip();
    REQUIRE(rd.pos() == heap.get() + used);
  }
  CHECK(valid > 1000);
}

TEST_CASE("Buffer grows, moves and resizes", "[wire][msgpack]") {
  Buffer a;
  CHECK(a.empty());
  for (int i = 0; i < 1000; ++i) a.Push(static_cast<uint8_t>(i));
  CHECK(a.size() == 1000);
  CHECK(a.capacity() >= 1000);
  a.Append("xyz", 3);
  CHECK(a.view().substr(1000) == "xyz");
  uint8_t* p = a.Grow(10);
  std::memset(p, 'q', 10);
  CHECK(a.size() == 1003);  // Grow alone does not commit
  a.Commit(10);
  CHECK(a.view().substr(1003) == std::string(10, 'q'));

  Buffer b(std::move(a));
  CHECK(b.size() == 1013);
  CHECK(a.size() == 0);  // NOLINT: moved-from is empty by contract
  CHECK(a.data() == nullptr);
  Buffer c;
  c.Push(1);
  c = std::move(b);
  CHECK(c.size() == 1013);
  CHECK(c.data()[999] == static_cast<uint8_t>(999));
  c.Resize(5);
  CHECK(c.size() == 5);
  c.clear();
  CHECK(c.empty());
  CHECK(c.capacity() >= 1013);
}

}  // namespace forkd::wire
