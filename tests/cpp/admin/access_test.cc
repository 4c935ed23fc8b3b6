// The admin server's access rules without sockets: listen addresses, the
// Host rule against DNS rebinding, Origin, the bearer token and its
// comparison.
#include "admin/access.h"

#include <catch2/catch.hpp>

namespace forkd::admin {
namespace {

const std::string kToken = "0123456789abcdef0123";

Listen ListenOn(const std::string& text) {
  Listen l;
  std::string error;
  REQUIRE(ParseListen(text, &l, &error));
  return l;
}

RequestHeaders Headers(std::vector<std::string> host, std::vector<std::string> origin = {},
                       std::vector<std::string> authorization = {}) {
  return RequestHeaders{std::move(host), std::move(origin), std::move(authorization)};
}

}  // namespace

TEST_CASE("listen addresses: host:port, [v6]:port, and which are loopback", "[admin]") {
  Listen l;
  std::string error;
  REQUIRE(ParseListen("127.0.0.1:8787", &l, &error));
  CHECK(l.host == "127.0.0.1");
  CHECK(l.port == 8787);
  CHECK(l.loopback);
  REQUIRE(ParseListen("[::1]:9", &l, &error));
  CHECK(l.host == "::1");
  CHECK(l.loopback);
  REQUIRE(ParseListen("localhost:80", &l, &error));
  CHECK(l.loopback);
  REQUIRE(ParseListen("127.9.9.9:80", &l, &error));
  CHECK(l.loopback);
  for (const char* open : {"0.0.0.0:8787", "[::]:8787", "10.0.0.5:1", "forkd.internal:8787",
                           "128.0.0.1:1"}) {
    INFO(open);
    REQUIRE(ParseListen(open, &l, &error));
    CHECK_FALSE(l.loopback);
  }
  for (const char* bad : {"8787", ":8787", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536",
                          "127.0.0.1:80x", "::1:8787", "[::1]8787", "[::1"}) {
    INFO(bad);
    CHECK_FALSE(ParseListen(bad, &l, &error));
    CHECK(error.find("expected host:port") == 0);
  }
}

TEST_CASE("tokens: long enough, printable, compared in full", "[admin]") {
  std::string error;
  CHECK(ValidToken(kToken, &error));
  CHECK_FALSE(ValidToken("short", &error));
  CHECK(error.find("at least 16") != std::string::npos);
  CHECK_FALSE(ValidToken("0123456789abcdef 0123", &error));
  CHECK(error.find("printable ASCII") != std::string::npos);

  CHECK(TokenEquals(kToken, kToken));
  CHECK_FALSE(TokenEquals("", kToken));
  CHECK_FALSE(TokenEquals(kToken + "x", kToken));
  CHECK_FALSE(TokenEquals(kToken.substr(0, kToken.size() - 1), kToken));
  std::string last = kToken;
  last.back() = 'X';
  CHECK_FALSE(TokenEquals(last, kToken));
  // A prefix padded with NULs is not the token either.
  CHECK_FALSE(TokenEquals(std::string(kToken.size() + 1, '\0'), std::string(kToken.size(), '\0') + "a"));
}

TEST_CASE("on loopback, every request must name this machine and port as Host", "[admin]") {
  const Access a(ListenOn("127.0.0.1:8787"), "");
  for (const char* ok : {"127.0.0.1:8787", "localhost:8787", "LOCALHOST:8787", "[::1]:8787",
                         "127.0.0.2:8787"}) {
    INFO(ok);
    CHECK(a.Read(Headers({ok})).allowed());
  }
  for (const char* rebound : {"evil.example:8787", "127.0.0.1:8788", "localhost", "127.0.0.1",
                              "10.0.0.1:8787", "localhost.evil.example:8787", "[::1]"}) {
    INFO(rebound);
    const Verdict v = a.Read(Headers({rebound}));
    CHECK(v.status == 403);
    CHECK(v.message.find("DNS rebinding") != std::string::npos);
  }
  CHECK(a.Read(Headers({})).status == 403);
  CHECK(a.Read(Headers({"127.0.0.1:8787", "evil.example:8787"})).status == 403);
  // Port 80 may be left out of Host, as browsers do.
  const Access on80(ListenOn("localhost:80"), "");
  CHECK(on80.Read(Headers({"localhost"})).allowed());
}

TEST_CASE("on other addresses Host is not checked; the token guards changes", "[admin]") {
  const Access a(ListenOn("0.0.0.0:8787"), kToken);
  CHECK(a.Read(Headers({"forkd.internal:8787"})).allowed());
  CHECK(a.Read(Headers({})).allowed());
  CHECK(a.Change(Headers({"forkd.internal:8787"}, {}, {"Bearer " + kToken})).allowed());
  CHECK(a.Change(Headers({"forkd.internal:8787"})).status == 401);
}

TEST_CASE("with a token, changes need it: 401 without, 403 wrong, cross-origin 403", "[admin]") {
  const Access a(ListenOn("127.0.0.1:8787"), kToken);
  const std::string host = "127.0.0.1:8787";
  const Verdict none = a.Change(Headers({host}));
  CHECK(none.status == 401);
  CHECK(none.challenge);
  CHECK(a.Change(Headers({host}, {}, {"Bearer " + kToken})).allowed());
  CHECK(a.Change(Headers({host}, {}, {"bearer   " + kToken})).allowed());
  const Verdict wrong = a.Change(Headers({host}, {}, {"Bearer " + kToken + "0"}));
  CHECK(wrong.status == 403);
  CHECK_FALSE(wrong.challenge);
  CHECK(wrong.message == "wrong admin token");
  CHECK(a.Change(Headers({host}, {}, {"Basic " + kToken})).status == 403);
  CHECK(a.Change(Headers({host}, {}, {"Bearer"})).status == 403);
  CHECK(a.Change(Headers({host}, {}, {"Bearer " + kToken, "Bearer x"})).status == 403);
  // Same origin (a page this server served), or behind a TLS proxy.
  CHECK(a.Change(Headers({host}, {"http://127.0.0.1:8787"}, {"Bearer " + kToken})).allowed());
  CHECK(a.Change(Headers({host}, {"https://127.0.0.1:8787"}, {"Bearer " + kToken})).allowed());
  for (const char* other : {"http://evil.example", "http://127.0.0.1:3000", "null",
                            "http://localhost:8787"}) {
    INFO(other);
    const Verdict v = a.Change(Headers({host}, {other}, {"Bearer " + kToken}));
    CHECK(v.status == 403);
    CHECK(v.message.find("cross-origin request refused") == 0);
  }
  // The Host rule comes first, with or without the token.
  CHECK(a.Change(Headers({"evil.example:8787"}, {"http://evil.example:8787"},
                         {"Bearer " + kToken}))
            .status == 403);
}

TEST_CASE("without a token (loopback only), changes come from local non-browser clients",
          "[admin]") {
  const Access a(ListenOn("127.0.0.1:8787"), "");
  const std::string host = "127.0.0.1:8787";
  CHECK(a.Change(Headers({host})).allowed());
  CHECK(a.Change(Headers({host}, {"http://127.0.0.1:8787"})).allowed());
  const Verdict cross = a.Change(Headers({host}, {"http://evil.example"}));
  CHECK(cross.status == 403);
  CHECK(cross.message.find("FORK_ADMIN_TOKEN") != std::string::npos);
  const Verdict sent = a.Change(Headers({host}, {}, {"Bearer " + kToken}));
  CHECK(sent.status == 403);
  CHECK(sent.message.find("no admin token configured") != std::string::npos);
  CHECK(a.Change(Headers({"evil.example:8787"})).status == 403);
}

}  // namespace forkd::admin
