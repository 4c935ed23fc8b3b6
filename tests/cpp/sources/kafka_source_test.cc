// The kafka source's own logic: taking a leading `_fork_id` off a message
// value (what a kafka destination writes) and keeping its id. The consumer
// itself runs against a real broker in tests/e2e/kafka_hub.test.mjs.
#include "sources/kafka/kafka_source.h"

#include <catch2/catch.hpp>

namespace forkd::sources {
namespace {

TEST_CASE("a leading _fork_id member is taken off the value and kept as the id", "[kafka]") {
  std::string_view rest;
  std::string id;
  SplitForkId(R"({"_fork_id":"abc-1","orderId":"o1","n":2})", &rest, &id);
  CHECK(id == "abc-1");
  CHECK(rest == R"(,"orderId":"o1","n":2})");  // the comma stands for the opening brace

  SplitForkId(R"({"_fork_id":"only"})", &rest, &id);
  CHECK(id == "only");
  CHECK(rest == "{}");

  // Anything else is left as it is, with no id.
  for (std::string_view v : {R"({"orderId":"o1","_fork_id":"x"})", R"({"_fork_id":"a\"b","x":1})",
                             R"({"_fork_id":1,"x":1})", R"({"_fork_id":"unterminated)", "[1,2]", "",
                             R"( {"_fork_id":"x","y":1})"}) {
    SplitForkId(v, &rest, &id);
    CHECK(id.empty());
    CHECK(rest == v);
  }
}

}  // namespace
}  // namespace forkd::sources
