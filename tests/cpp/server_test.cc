// The server's retry schedule for a destination whose pipeline failed to
// start: soon at first, then less often, never more than 30 s apart.
#include "server.h"

#include "test_util.h"

namespace forkd {

TEST_CASE("a failed start is tried again after 1 s, doubling up to 30 s", "[server]") {
  CHECK(Server::StartRetryDelayMs(0) == 1000);
  CHECK(Server::StartRetryDelayMs(1) == 1000);
  CHECK(Server::StartRetryDelayMs(2) == 2000);
  CHECK(Server::StartRetryDelayMs(3) == 4000);
  CHECK(Server::StartRetryDelayMs(4) == 8000);
  CHECK(Server::StartRetryDelayMs(5) == 16000);
  CHECK(Server::StartRetryDelayMs(6) == 30000);
  CHECK(Server::StartRetryDelayMs(7) == 30000);
  CHECK(Server::StartRetryDelayMs(1000000) == 30000);
}

}  // namespace forkd
