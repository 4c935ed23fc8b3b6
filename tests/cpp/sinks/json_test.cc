// msgpack -> JSON: whatever the bytes of a string (control characters,
// quotes, invalid UTF-8), the output is valid JSON; binary is base64, the
// timestamp extension ISO-8601, NaN and infinities null.
#include "sinks/common/json.h"

#include <charconv>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "test_util.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace {

using test::JsonChecker;
using test::Pack;
using test::U8;

std::string JsonString(std::string_view s) {
  std::string out;
  AppendJsonString(s, &out);
  return out;
}

std::string Json(const std::string& msgpack) {
  size_t used = 0;
  REQUIRE(wire::CheckValue(U8(msgpack), msgpack.size(), wire::Limits{}, &used).ok);
  std::string out;
  const uint8_t* end = AppendJson(U8(msgpack), &out);
  CHECK(end == U8(msgpack) + used);
  return out;
}

// Checks that `s` encodes to valid JSON that decodes to `s` itself when `s`
// is valid UTF-8, or to `s` with U+FFFD for each bad byte otherwise.
void CheckString(const std::string& s) {
  const std::string j = JsonString(s);
  std::string why, decoded;
  INFO("input bytes: " <<
       [&] {
         std::string h;
         for (unsigned char c : s) h += std::to_string(c) + " ";
         return h;
       }() << "-> " << j
                       << " (" << why << ")");
  REQUIRE(JsonChecker::Valid(j, &why, &decoded));
  if (JsonChecker::Utf8(s)) {
    REQUIRE(decoded == s);
  } else {
    REQUIRE(decoded != s);
    REQUIRE(decoded.find("\xef\xbf\xbd") != std::string::npos);
  }
}

}  // namespace

TEST_CASE("JSON strings escape what they must", "[json]") {
  CHECK(JsonString("") == "\"\"");
  CHECK(JsonString("plain text") == "\"plain text\"");
  CHECK(JsonString("say \"hi\"") == "\"say \\\"hi\\\"\"");
  CHECK(JsonString("back\\slash") == "\"back\\\\slash\"");
  CHECK(JsonString("a\nb\rc\td\be\ff") == "\"a\\nb\\rc\\td\\be\\ff\"");
  CHECK(JsonString(std::string("nul\0here", 8)) == "\"nul\\u0000here\"");
  CHECK(JsonString("\x01\x1f") == "\"\\u0001\\u001f\"");
  CHECK(JsonString("\x7f") == "\"\x7f\"");  // DEL needs no escape
  CHECK(JsonString("/") == "\"/\"");
  // Valid UTF-8 passes through: 2, 3 and 4-byte sequences.
  CHECK(JsonString("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80") ==
        "\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
  CHECK(JsonString("\xef\xbf\xbf\xf4\x8f\xbf\xbf") == "\"\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
}

TEST_CASE("invalid UTF-8 becomes U+FFFD, one per bad byte", "[json]") {
  const std::string fffd = "\xef\xbf\xbd";
  const struct {
    const char* in;
    std::string out;
  } cases[] = {
      {"\x80", fffd},                                   // lone continuation
      {"a\xffz", "a" + fffd + "z"},                     // never valid
      {"\xc0\xaf", fffd + fffd},                        // overlong '/'
      {"\xc1\xbf", fffd + fffd},                        // overlong
      {"\xe0\x80\xaf", fffd + fffd + fffd},             // overlong 3-byte
      {"\xed\xa0\x80", fffd + fffd + fffd},             // UTF-16 surrogate
      {"\xf0\x80\x80\xaf", fffd + fffd + fffd + fffd},  // overlong 4-byte
      {"\xf4\x90\x80\x80", fffd + fffd + fffd + fffd},  // past U+10FFFF
      {"\xf5\x80\x80\x80", fffd + fffd + fffd + fffd},  // never valid lead
      {"\xe2\x82", fffd + fffd},                        // truncated at the end
      {"\xe2\x82x", fffd + fffd + "x"},                 // truncated mid-string
      {"\xc3", fffd},
      {"\xc3\"", fffd + "\\\""},  // quote after a bad lead
  };
  for (const auto& c : cases) {
    INFO(c.in);
    CHECK(JsonString(c.in) == "\"" + c.out + "\"");
    CHECK(JsonChecker::Valid(JsonString(c.in)));
  }
}

TEST_CASE("every string of one or two bytes encodes to valid JSON", "[json]") {
  for (int a = 0; a < 256; ++a) CheckString(std::string(1, static_cast<char>(a)));
  for (int a = 0; a < 256; ++a) {
    for (int b = 0; b < 256; ++b) {
      const std::string s{static_cast<char>(a), static_cast<char>(b)};
      // Fast path for the common case; the full check on failure.
      const std::string j = JsonString(s);
      std::string decoded;
      if (!JsonChecker::Valid(j, nullptr, &decoded) || (JsonChecker::Utf8(s) && decoded != s)) {
        CheckString(s);
      }
    }
  }
}

TEST_CASE("random byte strings encode to valid JSON", "[json]") {
  test::Rng rng(77);
  for (int i = 0; i < 50000; ++i) {
    std::string s = rng.Bytes(1 + rng.Uniform(12));
    // Bias toward the interesting range: lead and continuation bytes.
    for (auto& c : s) {
      if (rng.Uniform(3) != 0) c = static_cast<char>(0x80 | (c & 0x7f));
    }
    const std::string j = JsonString(s);
    std::string decoded;
    if (!JsonChecker::Valid(j, nullptr, &decoded) || (JsonChecker::Utf8(s) && decoded != s)) {
      CheckString(s);
    }
  }
}

TEST_CASE("base64 per RFC 4648", "[json]") {
  auto b64 = [](const std::string& s) {
    std::string out;
    AppendBase64(U8(s), s.size(), &out);
    return out;
  };
  CHECK(b64("") == "");
  CHECK(b64("f") == "Zg==");
  CHECK(b64("fo") == "Zm8=");
  CHECK(b64("foo") == "Zm9v");
  CHECK(b64("foob") == "Zm9vYg==");
  CHECK(b64("fooba") == "Zm9vYmE=");
  CHECK(b64("foobar") == "Zm9vYmFy");
  CHECK(b64(std::string("\0\0\0", 3)) == "AAAA");
  CHECK(b64("\xff\xff\xff") == "////");
  CHECK(b64("\xfb\xff") == "+/8=");
  // Every byte value, through a decoder.
  std::string all;
  for (int i = 0; i < 256; ++i) all.push_back(static_cast<char>(i));
  const std::string enc = b64(all);
  CHECK(enc.size() == 4 * ((all.size() + 2) / 3));
  const std::string table = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string dec;
  uint32_t acc = 0;
  int bits = 0;
  for (char c : enc) {
    if (c == '=') break;
    acc = (acc << 6) | static_cast<uint32_t>(table.find(c));
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      dec.push_back(static_cast<char>((acc >> bits) & 0xff));
    }
  }
  CHECK(dec == all);
}

TEST_CASE("timestamps as ISO-8601 UTC with the precision they need", "[json]") {
  auto iso = [](int64_t s, uint32_t ns) {
    std::string out;
    AppendIsoTime(s, ns, &out);
    return out;
  };
  CHECK(iso(0, 0) == "1970-01-01T00:00:00.000Z");
  CHECK(iso(1700000000, 0) == "2023-11-14T22:13:20.000Z");
  CHECK(iso(1763747400, 123000000) == "2025-11-21T17:50:00.123Z");
  CHECK(iso(1763747400, 123456000) == "2025-11-21T17:50:00.123456Z");
  CHECK(iso(1763747400, 123456789) == "2025-11-21T17:50:00.123456789Z");
  CHECK(iso(1763747400, 5) == "2025-11-21T17:50:00.000000005Z");
  CHECK(iso(-1, 0) == "1969-12-31T23:59:59.000Z");
  CHECK(iso(-62135596800, 0) == "0001-01-01T00:00:00.000Z");
  // Through the msgpack extension, in a document.
  const std::string doc = Pack([](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("at");
    w.Timestamp(1763747400, 500000000);
  });
  CHECK(Json(doc) == "{\"at\":\"2025-11-21T17:50:00.500Z\"}");
}

TEST_CASE("doubles in shortest round-trip form; NaN and infinities are null", "[json]") {
  auto d = [](double v) {
    std::string out;
    AppendDouble(v, &out);
    return out;
  };
  CHECK(d(1.5) == "1.5");
  CHECK(d(0.1) == "0.1");
  CHECK(d(3.0) == "3");
  CHECK(d(-0.0) == "-0");
  CHECK(d(1e300) == "1e+300");
  CHECK(d(std::nan("")) == "null");
  CHECK(d(std::numeric_limits<double>::infinity()) == "null");
  CHECK(d(-std::numeric_limits<double>::infinity()) == "null");
  test::Rng rng(31);
  for (int i = 0; i < 20000; ++i) {
    const uint64_t bits = rng.Next();
    double v;
    std::memcpy(&v, &bits, 8);
    const std::string s = d(v);
    INFO(s);
    REQUIRE(JsonChecker::Valid(s));
    if (std::isfinite(v)) {
      REQUIRE(std::strtod(s.c_str(), nullptr) == v);
    } else {
      REQUIRE(s == "null");
    }
  }
}

// Doubles inside a document take a shortcut for the common ones (|d| >= 1,
// up to three decimals); whatever the path, the text is std::to_chars's.
TEST_CASE("a double in a document is written exactly as std::to_chars writes it", "[json]") {
  auto in_doc = [](double v) {
    return Json(Pack([&](wire::Writer& w) { w.Double(v); }));
  };
  auto expect = [](double v) {
    char buf[32];
    return std::string(buf, std::to_chars(buf, buf + sizeof buf, v).ptr);
  };
  for (double v : {1.0, 10.0, 100000.0, 123456.0, 68.46, -27.04, 0.5, 0.005, 0.0005, 1e15, 4e12,
                   3999999999999.999, 999999999999.5, 1.001, 1.0001, 2.675, 9007199254740.993,
                   -1.0, 1e21, 120.0, 121.0, 5e-324, 0.1 + 0.2}) {
    INFO(v);
    CHECK(in_doc(v) == expect(v));
  }
  test::Rng rng(7);
  for (int i = 0; i < 200000; ++i) {
    // Amounts and prices of every size (the shortcut), and any double.
    const double scale[] = {1, 10, 100, 1000, 10000};
    const auto cents = static_cast<int64_t>(rng.Next() % 100000000000000ull) - 50000000000000ll;
    double v = static_cast<double>(cents % static_cast<int64_t>(std::pow(10, 3 + i % 10))) /
               scale[i % 5];
    if (i % 4 == 3) {
      const uint64_t bits = rng.Next();
      std::memcpy(&v, &bits, 8);
      if (!std::isfinite(v)) continue;
    }
    INFO(v);
    REQUIRE(in_doc(v) == expect(v));
  }
}

TEST_CASE("AppendJson renders every msgpack kind, nested", "[json]") {
  const std::string doc = Pack([](wire::Writer& w) {
    w.MapHeader(11);
    w.Str("nil");
    w.Nil();
    w.Str("bools");
    w.ArrayHeader(2);
    w.Bool(true);
    w.Bool(false);
    w.Str("ints");
    w.ArrayHeader(4);
    w.Int(-5);
    w.Int(INT64_MIN);
    w.Uint(UINT64_MAX);
    w.Uint(0);
    w.Str("floats");
    w.ArrayHeader(3);
    w.Double(2.5);
    w.Double(std::nan(""));
    w.Raw("\xca\x3f\xc0\x00\x00", 5);  // float32 1.5
    w.Str("s\"q\n");
    w.Str("caf\xc3\xa9\xff");
    w.Str("bin");
    w.Bin("hi!", 3);
    w.Str("ext");
    w.Raw("\xd5\x07\x01\x02", 4);  // fixext2 type 7
    w.Uint(42);                    // a key that is not a string
    w.Str("int key");
    w.ArrayHeader(1);  // an array key
    w.Uint(1);
    w.Str("array key");
    w.Str("deep");
    w.MapHeader(1);
    w.Str("a");
    w.ArrayHeader(1);
    w.MapHeader(1);
    w.Str("b");
    w.ArrayHeader(0);
    w.Str("empty");
    w.MapHeader(0);
  });
  const std::string j = Json(doc);
  CHECK(j ==
        "{\"nil\":null,\"bools\":[true,false],"
        "\"ints\":[-5,-9223372036854775808,18446744073709551615,0],"
        "\"floats\":[2.5,null,1.5],"
        "\"s\\\"q\\n\":\"caf\xc3\xa9\xef\xbf\xbd\","
        "\"bin\":\"aGkh\","
        "\"ext\":{\"ext\":7,\"data\":\"AQI=\"},"
        "\"42\":\"int key\","
        "\"[1]\":\"array key\","
        "\"deep\":{\"a\":[{\"b\":[]}]},"
        "\"empty\":{}}");
  std::string why;
  CHECK(JsonChecker::Valid(j, &why));
  INFO(why);

  // AppendJson returns the end of the value: consecutive values are walked.
  const std::string two = Pack([](wire::Writer& w) {
    w.ArrayHeader(2);
    w.Uint(1);
    w.Str("x");
    w.MapHeader(1);
    w.Str("k");
    w.Nil();
  });
  std::string out;
  const uint8_t* next = AppendJson(U8(two), &out);
  out.push_back('|');
  const uint8_t* end = AppendJson(next, &out);
  CHECK(out == "[1,\"x\"]|{\"k\":null}");
  CHECK(end == U8(two) + two.size());
}

TEST_CASE("random msgpack documents render as valid JSON", "[json]") {
  test::Rng rng(123);
  // Builds a random value of bounded depth, strings of random bytes.
  std::function<void(wire::Writer&, int)> gen = [&](wire::Writer& w, int depth) {
    switch (rng.Uniform(depth > 4 ? 8 : 10)) {
      case 0:
        w.Nil();
        break;
      case 1:
        w.Bool(rng.Uniform(2) == 1);
        break;
      case 2:
        w.Int(static_cast<int64_t>(rng.Next()));
        break;
      case 3: {
        const uint64_t b = rng.Next();
        double d;
        std::memcpy(&d, &b, 8);
        w.Double(d);
        break;
      }
      case 4:
        w.Str(rng.Bytes(rng.Uniform(10)));
        break;
      case 5: {
        const std::string b = rng.Bytes(rng.Uniform(10));
        w.Bin(b.data(), b.size());
        break;
      }
      case 6:
        w.Timestamp(static_cast<int64_t>(rng.Uniform(4000000000ull)),
                    static_cast<uint32_t>(rng.Uniform(1000000000)));
        break;
      case 7:
        w.Uint(rng.Next());
        break;
      case 8: {
        const uint32_t n = static_cast<uint32_t>(rng.Uniform(4));
        w.ArrayHeader(n);
        for (uint32_t i = 0; i < n; ++i) gen(w, depth + 1);
        break;
      }
      default: {
        const uint32_t n = static_cast<uint32_t>(rng.Uniform(4));
        w.MapHeader(n);
        for (uint32_t i = 0; i < n; ++i) {
          if (rng.Uniform(4) == 0) {
            gen(w, depth + 1);  // any key
          } else {
            w.Str(rng.Bytes(rng.Uniform(6)));
          }
          gen(w, depth + 1);
        }
      }
    }
  };
  for (int i = 0; i < 3000; ++i) {
    const std::string doc = Pack([&](wire::Writer& w) { gen(w, 0); });
    const std::string j = Json(doc);
    std::string why;
    INFO(j);
    REQUIRE(JsonChecker::Valid(j, &why));
  }
}

TEST_CASE("AppendJsonLine puts the id first and drops a payload field of the same name",
          "[json]") {
  const std::string payload = Pack([](wire::Writer& w) {
    w.MapHeader(3);
    w.Str("a");
    w.Uint(1);
    w.Str("_fork_id");
    w.Str("forged");
    w.Uint(7);  // a non-string key
    w.Str("seven");
  });
  std::string out;
  AppendJsonLine("id-1", U8(payload), payload.size(), &out);
  CHECK(out == "{\"_fork_id\":\"id-1\",\"a\":1,\"7\":\"seven\"}\n");
  out.clear();
  const std::string empty = Pack([](wire::Writer& w) { w.MapHeader(0); });
  AppendJsonLine("x", U8(empty), empty.size(), &out);
  CHECK(out == "{\"_fork_id\":\"x\"}\n");
}

}  // namespace forkd::sinks
