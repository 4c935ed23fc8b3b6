// The redis sink's own logic: the url it accepts, key templates over a
// record, which error replies are retries, the option checks `forkd check`
// runs, and a store that cannot be reached. tests/e2e/redis.test.mjs runs the
// sink against a real redis-server.
#include "sinks/redis/redis_sink.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "sinks/registry.h"
#include "test_util.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace {

using test::Pack;
using test::U8;

TEST_CASE("redis url: host, port, db, user and password", "[redis]") {
  redis::Url u;
  std::string err;
  REQUIRE(redis::ParseUrl("redis://localhost", &u, &err));
  CHECK(u.host == "localhost");
  CHECK(u.port == 6379);
  CHECK(u.db == 0);
  CHECK(u.password.empty());

  REQUIRE(redis::ParseUrl("redis://cache.internal:6380/3", &u, &err));
  CHECK(u.host == "cache.internal");
  CHECK(u.port == 6380);
  CHECK(u.db == 3);

  REQUIRE(redis::ParseUrl("redis://:s3cr%40t@10.0.0.1:7000", &u, &err));
  CHECK(u.user.empty());
  CHECK(u.password == "s3cr@t");
  CHECK(u.host == "10.0.0.1");
  CHECK(redis::SafeUrl(u) == "redis://10.0.0.1:7000");

  REQUIRE(redis::ParseUrl("redis://app:p%3Aw@[::1]:6390/0", &u, &err));
  CHECK(u.user == "app");
  CHECK(u.password == "p:w");
  CHECK(u.host == "::1");
  CHECK(u.port == 6390);
  CHECK(redis::SafeUrl(u) == "redis://app@[::1]:6390");

  REQUIRE(redis::ParseUrl("redis://h/", &u, &err));
  CHECK(u.db == 0);
}

TEST_CASE("redis url: what is refused, and why", "[redis]") {
  redis::Url u;
  auto refused = [&](const char* url) {
    std::string err;
    const bool ok = redis::ParseUrl(url, &u, &err);
    CHECK_FALSE(ok);
    return err;
  };
  CHECK(refused("rediss://h:6380").find("TLS") != std::string::npos);
  CHECK(refused("http://h").find("expected redis://") != std::string::npos);
  CHECK(refused("redis://").find("no host") != std::string::npos);
  CHECK(refused("redis://:6379").find("no host") != std::string::npos);
  CHECK(refused("redis://h:0").find("port") != std::string::npos);
  CHECK(refused("redis://h:70000").find("port") != std::string::npos);
  CHECK(refused("redis://h:").find("port") != std::string::npos);
  CHECK(refused("redis://h:abc").find("port") != std::string::npos);
  CHECK(refused("redis://h/one").find("database") != std::string::npos);
  CHECK(refused("redis://user@h").find("password") != std::string::npos);
  CHECK(refused("redis://:%zz@h").find("percent") != std::string::npos);
  CHECK(refused("redis://:ab%4@h").find("percent") != std::string::npos);
  CHECK(refused("redis://h?timeout=1").find("query") != std::string::npos);
  CHECK(refused("redis://[::1").find("[") != std::string::npos);
}

TEST_CASE("redis key template: fields of the record, literal braces", "[redis]") {
  const std::string payload = Pack([](wire::Writer& w) {
    w.MapHeader(5);
    w.Str("region");
    w.Str("eu");
    w.Str("user");
    w.MapHeader(1);
    w.Str("id");
    w.Int(42);
    w.Str("ok");
    w.Bool(true);
    w.Str("none");
    w.Nil();
    w.Str("items");
    w.ArrayHeader(1);
    w.Int(1);
  });
  transforms::Doc doc;
  doc.Load(U8(payload), payload.size());
  auto render = [&](const char* text, std::string* err) {
    redis::KeyTemplate t;
    REQUIRE(t.Parse(text, err));
    std::string out;
    return t.Render(doc, &out, err) ? out : "!" + *err;
  };
  std::string err;
  CHECK(render("orders", &err) == "orders");
  CHECK(render("orders:{region}", &err) == "orders:eu");
  CHECK(render("u:{user.id}:{region}:{ok}", &err) == "u:42:eu:true");
  CHECK(render("{{tag}}:{region}", &err) == "{tag}:eu");
  CHECK(render("x:{missing}", &err) == "!key: the record has no field missing");
  CHECK(render("x:{none}", &err) == "!key: the record has no field none");
  CHECK(render("x:{items}", &err).find("not a scalar") != std::string::npos);

  redis::KeyTemplate t;
  size_t col = 99;
  CHECK_FALSE(t.Parse("orders:{region", &err, &col));
  CHECK(err.find("unclosed") != std::string::npos);
  CHECK(col == 7);
  CHECK_FALSE(t.Parse("a}b", &err, &col));
  CHECK(col == 1);
  CHECK_FALSE(t.Parse("a{}", &err));
  CHECK_FALSE(t.Parse("", &err));
  CHECK(t.Parse("plain", &err));
  CHECK_FALSE(t.has_fields());
}

TEST_CASE("redis errors: the store's passing conditions are retries", "[redis]") {
  CHECK(redis::IsRetryable("LOADING Redis is loading the dataset in memory"));
  CHECK(redis::IsRetryable("BUSY Redis is busy running a script."));
  CHECK(redis::IsRetryable("READONLY You can't write against a read only replica."));
  CHECK(redis::IsRetryable("OOM command not allowed when used memory > 'maxmemory'."));
  CHECK(redis::IsRetryable("MISCONF Redis is configured to save RDB snapshots"));
  CHECK(redis::IsRetryable("NOAUTH Authentication required."));
  CHECK(redis::IsRetryable("MOVED 3999 127.0.0.1:6381"));
  CHECK(redis::IsRetryable("ERR max number of clients reached"));
  CHECK_FALSE(redis::IsRetryable(
      "WRONGTYPE Operation against a key holding the wrong kind of value"));
  CHECK_FALSE(redis::IsRetryable("ERR string exceeds maximum allowed size (proto-max-bulk-len)"));
  CHECK_FALSE(redis::IsRetryable("BUSYKEY Target key name already exists."));
}

TEST_CASE("redis options: what forkd check refuses", "[redis]") {
  const SinkType* t = FindSinkType("redis");
  REQUIRE(t != nullptr);
  auto check = [&](const std::string& yaml) {
    Options o;
    std::vector<ConfigError> errors;
    REQUIRE(ParseOptions(YAML::Load(yaml), t->options(), {}, "destinations.r", "f.yaml", &o,
                         &errors));
    std::string err;
    return t->check(o, &err) ? std::string("ok") : err;
  };
  CHECK(check("{url: 'redis://h', key: 'k'}") == "ok");
  CHECK(check("{url: 'redis://h', key: 'k:{a.b}', mode: publish}") == "ok");
  CHECK(check("{url: 'rediss://h', key: 'k'}").rfind("url: ", 0) == 0);
  CHECK(check("{url: 'redis://h', key: 'k:{'}").rfind("key: ", 0) == 0);
  CHECK(check("{url: 'redis://h', key: 'k', field: _fork_id}").rfind("field: ", 0) == 0);
  Options o;
  std::vector<ConfigError> errors;
  CHECK_FALSE(ParseOptions(YAML::Load("{url: 'redis://h', key: 'k', mode: xadd}"), t->options(),
                           {}, "destinations.r", "f.yaml", &o, &errors));
  CHECK_FALSE(ParseOptions(YAML::Load("{url: 'redis://h', key: 'k', maxlen: -1}"), t->options(),
                           {}, "destinations.r", "f.yaml", &o, &errors));
}

TEST_CASE("redis sink: a store that cannot be reached is a retry, the batch kept", "[redis]") {
  // A port nothing listens on: bound, never listening.
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
  socklen_t len = sizeof a;
  REQUIRE(getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0);

  RedisSink::Settings s;
  s.url = "redis://127.0.0.1:" + std::to_string(ntohs(a.sin_port));
  s.key = "events";
  s.timeout_ms = 1000;
  RedisSink sink(s);
  REQUIRE(sink.Open("").ok());
  const std::string payload = Pack([](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("n");
    w.Int(1);
  });
  Record r;
  r.event_id = "e-1";
  r.payload = U8(payload);
  r.payload_size = payload.size();
  sink.Write(r);
  const size_t held = sink.buffered_bytes();
  CHECK(held > 0);
  const Status st = sink.Flush();
  CHECK(st.IsRetry());
  CHECK(st.message().find("redis://127.0.0.1:") != std::string::npos);
  CHECK(sink.buffered_bytes() == held);
  sink.Discard();
  CHECK(sink.buffered_bytes() == 0);
  CHECK(sink.Flush().ok());
  close(fd);
}

TEST_CASE("redis sink: bad options are reported by Open", "[redis]") {
  RedisSink::Settings s;
  s.url = "rediss://h";
  s.key = "k";
  RedisSink sink(s);
  const Status st = sink.Open("");
  CHECK(st.IsFatal());
  CHECK(st.message().rfind("url: ", 0) == 0);
}

}  // namespace
}  // namespace forkd::sinks
