// CRC32C: the published test vectors, agreement with a bit-at-a-time
// reference at every length and alignment, Extend, and the LevelDB mask.
#include "core/crc32c.h"

#include <cstring>

#include "test_util.h"

namespace forkd::crc32c {
namespace {

// Bit-at-a-time CRC32C (reflected polynomial 0x82f63b78), as the reference.
uint32_t Reference(const uint8_t* p, size_t n) {
  uint32_t crc = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= p[i];
    for (int k = 0; k < 8; ++k) crc = (crc & 1) ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
  }
  return ~crc;
}

}  // namespace

TEST_CASE("crc32c matches the RFC 3720 test vectors", "[crc32c]") {
  uint8_t buf[48];
  std::memset(buf, 0, 32);
  CHECK(Value(buf, 32) == 0x8a9136aau);
  std::memset(buf, 0xff, 32);
  CHECK(Value(buf, 32) == 0x62a8ab43u);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(i);
  CHECK(Value(buf, 32) == 0x46dd794eu);
  for (int i = 0; i < 32; ++i) buf[i] = static_cast<uint8_t>(31 - i);
  CHECK(Value(buf, 32) == 0x113fdb5cu);
  const uint8_t iscsi_read[48] = {0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00,
                                  0x00, 0x00, 0x04, 0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00,
                                  0x00, 0x18, 0x28, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                                  0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00};
  CHECK(Value(iscsi_read, 48) == 0xd9963a56u);
  CHECK(Value("123456789", 9) == 0xe3069283u);
  CHECK(Value("", 0) == 0);
}

TEST_CASE("crc32c agrees with the bitwise reference at every length and alignment", "[crc32c]") {
  test::Rng rng(5);
  const std::string data = rng.Bytes(4096 + 16);
  const auto* p = reinterpret_cast<const uint8_t*>(data.data());
  for (size_t align = 0; align < 8; ++align) {
    for (size_t n = 0; n <= 300; ++n) {
      INFO("offset " << align << ", " << n << " bytes");
      REQUIRE(Value(p + align, n) == Reference(p + align, n));
    }
  }
  CHECK(Value(p + 3, 4096) == Reference(p + 3, 4096));
}

TEST_CASE("Extend continues a crc across any split", "[crc32c]") {
  test::Rng rng(6);
  const std::string data = rng.Bytes(200);
  const uint32_t whole = Value(data.data(), data.size());
  for (size_t split = 0; split <= data.size(); ++split) {
    const uint32_t a = Value(data.data(), split);
    REQUIRE(Extend(a, data.data() + split, data.size() - split) == whole);
  }
  CHECK(Extend(Value("hello ", 6), "world", 5) == Value("hello world", 11));
  CHECK(Value("a", 1) != Value("foo", 3));
}

TEST_CASE("Mask and Unmask", "[crc32c]") {
  const uint32_t crc = Value("foo", 3);
  CHECK(Mask(crc) != crc);
  CHECK(Mask(Mask(crc)) != Mask(crc));
  CHECK(Unmask(Mask(crc)) == crc);
  CHECK(Unmask(Unmask(Mask(Mask(crc)))) == crc);
  test::Rng rng(8);
  for (int i = 0; i < 10000; ++i) {
    const auto v = static_cast<uint32_t>(rng.Next());
    REQUIRE(Unmask(Mask(v)) == v);
  }
}

}  // namespace forkd::crc32c
