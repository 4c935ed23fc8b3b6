// What GET /api/events/<id> takes as an id before it looks anything up:
// receipt ids and idempotency keys up to 256 bytes of UTF-8, nothing with
// control characters; and how it writes times.
#include "pipeline/event_status.h"

#include <catch2/catch.hpp>

namespace forkd::pipeline {

TEST_CASE("MalformedEventId takes receipt ids and UTF-8 keys up to 256 bytes", "[event_status]") {
  CHECK(MalformedEventId("85bf11143dcbd62259430d4b2af20d72-89815").empty());
  CHECK(MalformedEventId("order-1234").empty());
  CHECK(MalformedEventId("commande-été-🍰").empty());
  CHECK(MalformedEventId("a/b?c d").empty());
  CHECK(MalformedEventId(std::string(256, 'k')).empty());
}

TEST_CASE("MalformedEventId refuses empty, oversized, control and non-UTF-8 ids, saying why",
          "[event_status]") {
  CHECK(MalformedEventId("").find("required") != std::string::npos);
  CHECK(MalformedEventId(std::string(257, 'k')).find("257 bytes") != std::string::npos);
  CHECK(MalformedEventId(std::string("a\0b", 3)).find("control character at byte 1") !=
        std::string::npos);
  CHECK(MalformedEventId("a\nb").find("control") != std::string::npos);
  CHECK(MalformedEventId("a\x7f").find("control") != std::string::npos);
  CHECK(MalformedEventId("\xff\xfe").find("not UTF-8 (byte 0)") != std::string::npos);
  CHECK(MalformedEventId("ab\xc3").find("not UTF-8 (byte 2)") != std::string::npos);   // cut short
  CHECK(MalformedEventId("\xe2\x28\xa1").find("not UTF-8 (byte 1)") != std::string::npos);
}

TEST_CASE("UtcMillis writes a wall-clock time in UTC to the millisecond", "[event_status]") {
  CHECK(UtcMillis(1796434678283592) == "2026-12-05T01:37:58.283Z");
  CHECK(UtcMillis(0) == "1970-01-01T00:00:00.000Z");
}

}  // namespace forkd::pipeline
