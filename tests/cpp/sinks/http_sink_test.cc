// The http sink against a real HTTP server on 127.0.0.1: the body in both
// formats and gzipped, headers, the Idempotency-Key, how each answer maps to
// ok / retry / fatal, Retry-After, network errors, timeouts and keep-alive.
#include "sinks/http/http_sink.h"

#include <arpa/inet.h>
#include <httplib.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <sys/socket.h>
#include <zlib.h>

#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <functional>
#include <mutex>
#include <thread>

#include "sinks/registry.h"
#include "test_util.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace {

using test::JsonChecker;
using test::Pack;
using test::U8;

// What the server saw of one request.
struct Seen {
  std::string method;
  std::string path;
  std::string body;  // as httplib hands it over (decoded if gzipped)
  httplib::Headers headers;
  int remote_port = -1;
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);  // httplib's header map ignores case
    return it == headers.end() ? std::string() : it->second;
  }
};

using Responder = std::function<void(const httplib::Request&, httplib::Response&)>;

// A cpp-httplib server on 127.0.0.1 and a free port, recording every request
// and answering with `respond` (200 with no body when none is set).
class TestServer {
 public:
  explicit TestServer(Responder respond = nullptr) : respond_(std::move(respond)) {
    auto handler = [this](const httplib::Request& req, httplib::Response& res) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        seen_.push_back({req.method, req.path, req.body, req.headers, req.remote_port});
      }
      if (respond_) {
        respond_(req, res);
      } else {
        res.status = 200;
      }
    };
    svr_.Post(".*", handler);
    svr_.Put(".*", handler);
    svr_.Get(".*", handler);
    svr_.set_keep_alive_timeout(2);
    port_ = svr_.bind_to_any_port("127.0.0.1");
    REQUIRE(port_ > 0);
    thread_ = std::thread([this] { svr_.listen_after_bind(); });
  }
  ~TestServer() {
    svr_.stop();
    thread_.join();
  }
  std::string Url(const std::string& path = "/ingest") const {
    return "http://127.0.0.1:" + std::to_string(port_) + path;
  }
  int port() const { return port_; }
  std::vector<Seen> Requests() const {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  httplib::Server svr_;
  Responder respond_;
  int port_ = -1;
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<Seen> seen_;
};

// A bare TCP server for one request, keeping its body exactly as it came off
// the wire (httplib decodes gzip before a handler sees it).
class RawServer {
 public:
  RawServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd_, 4) == 0);
    socklen_t len = sizeof(a);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Serve(); });
  }
  ~RawServer() {
    ::shutdown(fd_, SHUT_RDWR);  // wakes accept() if nobody came
    thread_.join();
    ::close(fd_);
  }
  std::string Url() const { return "http://127.0.0.1:" + std::to_string(port_) + "/raw"; }
  // The request head (lower-cased) and body; waits for them.
  std::pair<std::string, std::string> Wait() {
    thread_.join();
    thread_ = std::thread([] {});
    return {head_, body_};
  }

 private:
  void Serve() {
    const int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (c < 0) return;
    std::string in;
    char buf[65536];
    size_t head_end = std::string::npos;
    size_t want = 0;
    while (true) {
      if (head_end == std::string::npos) {
        head_end = in.find("\r\n\r\n");
        if (head_end != std::string::npos) {
          head_ = in.substr(0, head_end);
          for (char& ch : head_)
            ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
          const size_t cl = head_.find("\r\ncontent-length:");
          if (cl != std::string::npos) want = std::strtoull(head_.c_str() + cl + 17, nullptr, 10);
        }
      }
      if (head_end != std::string::npos && in.size() >= head_end + 4 + want) break;
      const ssize_t n = ::read(c, buf, sizeof(buf));
      if (n <= 0) break;
      in.append(buf, static_cast<size_t>(n));
    }
    if (head_end != std::string::npos) body_ = in.substr(head_end + 4, want);
    const std::string reply = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    (void)!::write(c, reply.data(), reply.size());
    ::close(c);
  }

  int fd_ = -1;
  int port_ = 0;
  std::thread thread_;
  std::string head_, body_;
};

// A sink made the way forkd makes it: the YAML options through the sink's
// option table, then CreateHttpSink.
std::unique_ptr<Sink> MakeSink(const std::string& yaml) {
  DestinationConfig d;
  std::vector<ConfigError> errors;
  const bool ok = ParseOptions(YAML::Load(yaml), HttpSinkOptions(), {}, "destinations.out",
                               "fork.yaml", &d.sink, &errors);
  std::string all;
  for (const auto& e : errors) all += e.ToString() + "\n";
  INFO(all);
  REQUIRE(ok);
  Config c;
  SinkContext ctx{&c, &d};
  return CreateHttpSink(ctx);
}

std::unique_ptr<Sink> OpenSink(const std::string& yaml) {
  auto sink = MakeSink(yaml);
  const Status s = sink->Open("");
  INFO(s.ToString());
  REQUIRE(s.ok());
  return sink;
}

void Put(Sink& sink, const std::string& id, const std::string& payload) {
  static log::EntryHeader h;
  Record r;
  r.header = &h;
  r.event_id = id;
  r.payload = U8(payload);
  r.payload_size = payload.size();
  sink.Write(r);
}

// {"v": "<text>"}
std::string Text(const std::string& text) {
  return Pack([&](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("v");
    w.Str(text);
  });
}

std::string Line(const std::string& id, const std::string& text) {
  return "{\"_fork_id\":\"" + id + "\",\"v\":\"" + text + "\"}";
}

std::string Sha256Hex(const std::string& s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  REQUIRE(EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr) == 1);
  std::string hex;
  char b[3];
  for (unsigned i = 0; i < len; ++i) {
    std::snprintf(b, sizeof(b), "%02x", md[i]);
    hex += b;
  }
  return hex;
}

std::string Gunzip(const std::string& gz) {
  z_stream z{};
  REQUIRE(inflateInit2(&z, 15 + 16) == Z_OK);
  std::string out;
  char buf[16384];
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(gz.data()));
  z.avail_in = static_cast<uInt>(gz.size());
  int rc = Z_OK;
  while (rc == Z_OK) {
    z.next_out = reinterpret_cast<Bytef*>(buf);
    z.avail_out = sizeof(buf);
    rc = inflate(&z, Z_NO_FLUSH);
    out.append(buf, sizeof(buf) - z.avail_out);
  }
  inflateEnd(&z);
  REQUIRE(rc == Z_STREAM_END);
  return out;
}

// A port on 127.0.0.1 bound but not listening: connecting is refused. The
// socket is held so no one else takes the port meanwhile.
class RefusingPort {
 public:
  RefusingPort() {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    REQUIRE(fd_ >= 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    socklen_t len = sizeof(a);
    REQUIRE(::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len) == 0);
    port_ = ntohs(a.sin_port);
  }
  ~RefusingPort() { ::close(fd_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

}  // namespace

TEST_CASE("http: the sink type is registered with its option table", "[http]") {
  const SinkType* t = FindSinkType("http");
  REQUIRE(t != nullptr);
  std::vector<std::string_view> names;
  for (const auto& o : t->options()) names.push_back(o.name);
  CHECK(names == std::vector<std::string_view>{"url", "method", "format", "gzip", "headers",
                                               "timeout", "connect_timeout"});
  // Defaults as documented.
  DestinationConfig d;
  std::vector<ConfigError> errors;
  REQUIRE(ParseOptions(YAML::Load("url: http://x/"), HttpSinkOptions(), {}, "d", "f", &d.sink,
                       &errors));
  CHECK(d.sink.Str("method") == "POST");
  CHECK(d.sink.Str("format") == "ndjson");
  CHECK_FALSE(d.sink.Bool("gzip"));
  CHECK(d.sink.Millis("timeout") == 10000);
  CHECK(d.sink.Millis("connect_timeout") == 2000);
}

TEST_CASE("http: ndjson posts one JSON object per line, _fork_id first", "[http]") {
  TestServer server;
  auto sink = OpenSink("url: " + server.Url());
  const std::string p1 = Pack([](wire::Writer& w) {
    w.MapHeader(4);
    w.Str("user");
    w.Str("u1");
    w.Str("n");
    w.Int(-7);
    w.Str("_fork_id");  // forkd's id wins
    w.Str("spoof");
    w.Str("tags");
    w.ArrayHeader(2);
    w.Str("a");
    w.Bool(false);
  });
  const std::string p2 = Pack([](wire::Writer& w) {
    w.MapHeader(1);
    w.Str("x");
    w.Double(1.5);
  });
  Put(*sink, "id-1", p1);
  Put(*sink, "id-2", p2);
  const std::string want =
      "{\"_fork_id\":\"id-1\",\"user\":\"u1\",\"n\":-7,\"tags\":[\"a\",false]}\n"
      "{\"_fork_id\":\"id-2\",\"x\":1.5}\n";
  CHECK(sink->buffered_bytes() == want.size());
  CHECK(server.Requests().empty());  // nothing is sent before Flush

  const Status s = sink->Flush();
  INFO(s.ToString());
  REQUIRE(s.ok());
  CHECK(sink->buffered_bytes() == 0);
  const auto reqs = server.Requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].method == "POST");
  CHECK(reqs[0].path == "/ingest");
  CHECK(reqs[0].body == want);
  CHECK(reqs[0].Header("Content-Type") == "application/x-ndjson");
  CHECK(reqs[0].Header("X-Fork-Count") == "2");
  CHECK(reqs[0].Header("Content-Encoding").empty());
  for (const auto& line : {want.substr(0, want.find('\n')), want.substr(want.find('\n') + 1)}) {
    CHECK(JsonChecker::Valid(line));
  }

  // Nothing buffered: ok, and no request.
  REQUIRE(sink->Flush().ok());
  CHECK(server.Requests().size() == 1);
  // The next batch holds only its own records.
  Put(*sink, "id-3", Text("c"));
  REQUIRE(sink->Flush().ok());
  REQUIRE(server.Requests().size() == 2);
  CHECK(server.Requests()[1].body == Line("id-3", "c") + "\n");
  CHECK(server.Requests()[1].Header("X-Fork-Count") == "1");
}

TEST_CASE("http: format json sends one JSON array; method PUT sends a PUT", "[http]") {
  TestServer server;
  auto sink = OpenSink("url: " + server.Url("/bulk") + "\nformat: json\nmethod: PUT");
  Put(*sink, "a", Text("one"));
  CHECK(sink->buffered_bytes() == ("[" + Line("a", "one") + "]").size());
  Put(*sink, "b", Text("two"));
  Put(*sink, "c", Pack([](wire::Writer& w) { w.MapHeader(0); }));
  const std::string want =
      "[" + Line("a", "one") + "," + Line("b", "two") + ",{\"_fork_id\":\"c\"}]";
  CHECK(sink->buffered_bytes() == want.size());
  REQUIRE(sink->Flush().ok());
  Put(*sink, "d", Text("alone"));
  REQUIRE(sink->Flush().ok());

  const auto reqs = server.Requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[0].method == "PUT");
  CHECK(reqs[0].path == "/bulk");
  CHECK(reqs[0].body == want);
  std::string why;
  CHECK(JsonChecker::Valid(reqs[0].body, &why));
  INFO(why);
  CHECK(reqs[0].Header("Content-Type") == "application/json");
  CHECK(reqs[0].Header("X-Fork-Count") == "3");
  CHECK(reqs[1].body == "[" + Line("d", "alone") + "]");
}

TEST_CASE("http: gzip sends a gzip body that inflates to the ndjson batch", "[http]") {
  std::string big;  // compressible, so the compressed body is clearly smaller
  for (int i = 0; i < 50; ++i) big += "the same words again ";
  const std::string want = Line("g-1", big) + "\n" + Line("g-2", "small") + "\n";

  SECTION("the bytes on the wire") {
    RawServer raw;
    auto sink = OpenSink("url: " + raw.Url() + "\ngzip: true");
    Put(*sink, "g-1", Text(big));
    Put(*sink, "g-2", Text("small"));
    CHECK(sink->buffered_bytes() == want.size());  // the body before compression
    const Status s = sink->Flush();
    INFO(s.ToString());
    REQUIRE(s.ok());
    const auto [head, body] = raw.Wait();
    CHECK_THAT(head, Catch::Contains("\r\ncontent-encoding: gzip"));
    CHECK_THAT(head, Catch::Contains("\r\ncontent-type: application/x-ndjson"));
    CHECK(body.size() < want.size() / 4);
    CHECK(Gunzip(body) == want);
  }
  SECTION("a server that decodes gzip gets the batch, also when it is sent again") {
    std::atomic<int> calls{0};
    TestServer server([&](const httplib::Request&, httplib::Response& res) {
      res.status = calls++ == 0 ? 503 : 200;
    });
    auto sink = OpenSink("url: " + server.Url() + "\ngzip: true\nformat: json");
    Put(*sink, "g-1", Text(big));
    Put(*sink, "g-2", Text("small"));
    CHECK(sink->Flush().IsRetry());
    REQUIRE(sink->Flush().ok());
    const auto reqs = server.Requests();
    REQUIRE(reqs.size() == 2);
    const std::string array = "[" + Line("g-1", big) + "," + Line("g-2", "small") + "]";
    for (const auto& r : reqs) {
      CHECK(r.Header("Content-Encoding") == "gzip");
      CHECK(r.body == array);  // httplib inflated it
      CHECK(std::stoul(r.Header("Content-Length")) < array.size() / 4);
    }
  }
}

TEST_CASE("http: configured headers arrive, ${ENV} values read, and never in messages", "[http]") {
  ::setenv("FORK_TEST_HTTP_TOKEN", "s3cr3t-t0ken", 1);
  TestServer server([](const httplib::Request&, httplib::Response& res) {
    res.status = 500;
    res.set_content("down", "text/plain");
  });
  auto sink = OpenSink("url: " + server.Url() +
                       "\n"
                       "headers:\n"
                       "  Authorization: \"Bearer ${FORK_TEST_HTTP_TOKEN}\"\n"
                       "  X-Tenant: acme\n"
                       "  X-Default: \"${FORK_TEST_HTTP_UNSET_VAR:-fallback}\"\n"
                       "  Content-Type: application/vnd.acme+ndjson\n");
  Put(*sink, "h-1", Text("x"));
  const Status s = sink->Flush();
  CHECK(s.IsRetry());
  CHECK_THAT(s.message(), !Catch::Contains("s3cr3t"));
  const auto reqs = server.Requests();
  REQUIRE(reqs.size() == 1);
  CHECK(reqs[0].Header("Authorization") == "Bearer s3cr3t-t0ken");
  CHECK(reqs[0].Header("X-Tenant") == "acme");
  CHECK(reqs[0].Header("X-Default") == "fallback");
  // A configured Content-Type replaces the sink's, not added beside it.
  CHECK(reqs[0].headers.count("Content-Type") == 1);
  CHECK(reqs[0].Header("Content-Type") == "application/vnd.acme+ndjson");
  ::unsetenv("FORK_TEST_HTTP_TOKEN");
}

TEST_CASE("http: bad headers make Open fail, naming the header but not its value", "[http]") {
  ::unsetenv("FORK_TEST_HTTP_MISSING");
  ::setenv("FORK_TEST_HTTP_CRLF", "secret\r\nX-Injected: 1", 1);
  struct Case {
    std::string headers;
    std::string says;
  };
  const std::vector<Case> cases = {
      {"  Authorization: \"Bearer ${FORK_TEST_HTTP_MISSING}\"\n",
       "headers.Authorization: environment variable ${FORK_TEST_HTTP_MISSING} is not set"},
      {"  X-Token: \"${FORK_TEST_HTTP_CRLF}\"\n", "headers.X-Token: the value contains a control"},
      {"  \"Bad Name\": secret\n", "'Bad Name' is not a valid header name"},
      {"  Idempotency-Key: secret\n", "headers.Idempotency-Key: set by the sink itself"},
      {"  content-length: secret\n", "set by the sink itself"},
      {"  X-List: [secret]\n", "headers.X-List: expected a string value"},
  };
  for (const auto& c : cases) {
    INFO(c.headers);
    auto sink = MakeSink("url: http://127.0.0.1:1/\nheaders:\n" + c.headers);
    const Status s = sink->Open("");
    CHECK(s.IsFatal());
    CHECK_THAT(s.message(), Catch::Contains(c.says) && !Catch::Contains("secret"));
  }
  auto sink = MakeSink("url: http://127.0.0.1:1/\nheaders: [a, b]");
  CHECK(sink->Open("").IsFatal());
  ::unsetenv("FORK_TEST_HTTP_CRLF");
}

TEST_CASE("http: Idempotency-Key is stable for a batch and differs between batches", "[http]") {
  TestServer server;
  auto sink = OpenSink("url: " + server.Url());
  auto send = [&](const std::vector<std::string>& ids) {
    for (const auto& id : ids) Put(*sink, id, Text("v"));
    REQUIRE(sink->Flush().ok());
    return server.Requests().back().Header("Idempotency-Key");
  };
  const std::string abc = send({"a-1", "b-2", "c-3"});
  const std::string abc_again = send({"a-1", "b-2", "c-3"});
  const std::string abd = send({"a-1", "b-2", "d-4"});
  const std::string ab = send({"a-1", "b-2"});
  const std::string one = send({"a-1"});
  // Another sink (a restart) computes the same key for the same batch.
  auto other = OpenSink("url: " + server.Url());
  for (const auto& id : {"a-1", "b-2", "c-3"}) Put(*other, id, Text("v"));
  REQUIRE(other->Flush().ok());

  CHECK(abc == Sha256Hex("a-1\nb-2\nc-3"));
  CHECK(abc.size() == 64);
  CHECK(abc == abc_again);
  CHECK(server.Requests().back().Header("Idempotency-Key") == abc);
  CHECK(abd != abc);
  CHECK(ab == Sha256Hex("a-1\nb-2"));
  CHECK(one == "a-1");  // a batch of one: its event id
  // An id that cannot be a header value is hashed, never sent raw.
  const std::string odd = send({"line\r\nX-Evil: 1"});
  CHECK(odd == Sha256Hex("line\r\nX-Evil: 1"));
  CHECK(server.Requests().back().Header("X-Evil").empty());
}

TEST_CASE("http: 500 is a retry and the whole batch is sent again on the next Flush", "[http]") {
  std::atomic<int> calls{0};
  TestServer server([&](const httplib::Request&, httplib::Response& res) {
    if (calls++ == 0) {
      res.status = 500;
      res.set_content("database is down\n" + std::string(1000, 'x'), "text/plain");
    }
  });
  auto sink = OpenSink("url: " + server.Url("/ingest?api_key=k3y"));
  for (int i = 0; i < 5; ++i) Put(*sink, "r-" + std::to_string(i), Text("v" + std::to_string(i)));
  const size_t buffered = sink->buffered_bytes();

  const Status s = sink->Flush();
  CHECK(s.IsRetry());
  // The url without its query, the status and the start of the body on one line.
  CHECK_THAT(s.message(),
             Catch::StartsWith("http 500 from http://127.0.0.1:" + std::to_string(server.port()) +
                               "/ingest: database is down xxx"));
  CHECK_THAT(s.message(), !Catch::Contains("k3y") && !Catch::Contains("\n"));
  CHECK(s.message().size() < 300);  // an excerpt, not the whole body
  CHECK(sink->retry_after_ms() == -1);
  CHECK(sink->buffered_bytes() == buffered);  // kept for the retry

  REQUIRE(sink->Flush().ok());
  CHECK(sink->buffered_bytes() == 0);
  const auto reqs = server.Requests();
  REQUIRE(reqs.size() == 2);
  CHECK(reqs[1].body == reqs[0].body);
  CHECK(reqs[1].body.size() == buffered);
  CHECK(reqs[1].Header("Idempotency-Key") == reqs[0].Header("Idempotency-Key"));
  CHECK(reqs[1].Header("X-Fork-Count") == "5");
}

TEST_CASE("http: 429 with Retry-After is a retry with retry_after_ms, reset at each Flush",
          "[http]") {
  std::atomic<int> calls{0};
  TestServer server([&](const httplib::Request&, httplib::Response& res) {
    switch (calls++) {
      case 0:
        res.status = 429;
        res.set_header("Retry-After", "3");
        break;
      case 1: {
        res.status = 503;
        // An HTTP-date 20 s from now.
        const time_t t = std::time(nullptr) + 20;
        std::tm tm{};
        gmtime_r(&t, &tm);
        char b[64];
        std::strftime(b, sizeof(b), "%a, %d %b %Y %H:%M:%S GMT", &tm);
        res.set_header("Retry-After", b);
        break;
      }
      case 2:
        res.status = 503;  // no Retry-After
        break;
      default:
        res.status = 200;
    }
  });
  auto sink = OpenSink("url: " + server.Url());
  CHECK(sink->retry_after_ms() == -1);
  Put(*sink, "id", Text("v"));

  Status s = sink->Flush();
  CHECK(s.IsRetry());
  CHECK_THAT(s.message(), Catch::StartsWith("http 429 from "));
  CHECK(sink->retry_after_ms() == 3000);

  s = sink->Flush();
  CHECK(s.IsRetry());
  CHECK(sink->retry_after_ms() > 18000);
  CHECK(sink->retry_after_ms() <= 20000);

  s = sink->Flush();
  CHECK(s.IsRetry());
  CHECK(sink->retry_after_ms() == -1);

  REQUIRE(sink->Flush().ok());
  CHECK(sink->retry_after_ms() == -1);
  CHECK(server.Requests().size() == 4);
}

TEST_CASE("http: 408 and 5xx are retries; 3xx and other 4xx are fatal", "[http]") {
  std::atomic<int> status{200};
  TestServer server([&](const httplib::Request& req, httplib::Response& res) {
    res.status = status.load();
    if (res.status == 302) res.set_header("Location", "/elsewhere");
    if (res.status >= 300) res.set_content("said " + std::to_string(res.status), "text/plain");
  });
  auto sink = OpenSink("url: " + server.Url());
  for (int code : {408, 502, 503, 504, 400, 401, 404, 413, 302}) {
    INFO(code);
    status = code;
    Put(*sink, "id-" + std::to_string(code), Text("v"));
    const Status s = sink->Flush();
    const bool retry = code == 408 || code >= 500;
    CHECK(s.IsRetry() == retry);
    CHECK(s.IsFatal() == !retry);
    CHECK_THAT(s.message(), Catch::StartsWith("http " + std::to_string(code) + " from " +
                                              server.Url() + ": said " + std::to_string(code)));
    CHECK(sink->buffered_bytes() > 0);
    sink->Discard();  // the pipeline's move after fatal, or when it gives up
    CHECK(sink->buffered_bytes() == 0);
  }
  // The redirect was not followed.
  for (const auto& r : server.Requests()) CHECK(r.path == "/ingest");
  CHECK(server.Requests().size() == 9);
  // After a Discard the next batch holds only its own records.
  status = 200;
  Put(*sink, "after", Text("v"));
  REQUIRE(sink->Flush().ok());
  CHECK(server.Requests().back().body == Line("after", "v") + "\n");
}

TEST_CASE("http: connection refused is a retry naming the url", "[http]") {
  RefusingPort closed;
  const std::string url = "http://user:pa55@127.0.0.1:" + std::to_string(closed.port()) + "/in";
  auto sink = OpenSink("url: " + url);
  Put(*sink, "id", Text("v"));
  const size_t buffered = sink->buffered_bytes();
  const Status s = sink->Flush();
  CHECK(s.IsRetry());
  CHECK_THAT(s.message(),
             Catch::Contains("http://127.0.0.1:" + std::to_string(closed.port()) + "/in failed: "));
  CHECK_THAT(s.message(), Catch::Contains("onnect"));  // curl's "Failed to connect ... refused"
  CHECK_THAT(s.message(), !Catch::Contains("pa55"));
  CHECK(sink->retry_after_ms() == -1);
  CHECK(sink->buffered_bytes() == buffered);
}

TEST_CASE("http: a server slower than the timeout is a retry, long before it answers", "[http]") {
  std::atomic<bool> release{false};
  TestServer server([&](const httplib::Request&, httplib::Response& res) {
    const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    while (!release && std::chrono::steady_clock::now() < until) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  });
  {
    auto sink = OpenSink("url: " + server.Url() + "\ntimeout: 200ms");
    Put(*sink, "slow", Text("v"));
    const auto t0 = std::chrono::steady_clock::now();
    const Status s = sink->Flush();
    const auto took = std::chrono::steady_clock::now() - t0;
    CHECK(s.IsRetry());
    CHECK_THAT(s.message(), Catch::Contains(server.Url() + " failed: ") &&
                                Catch::Contains("timed out"));  // "Operation timed out after ..."
    CHECK(took >= std::chrono::milliseconds(150));
    // Far below the 5 s the server holds the request: the timeout cut it.
    CHECK(took < std::chrono::seconds(3));
    CHECK(sink->buffered_bytes() > 0);
  }
  release = true;
}

TEST_CASE("http: consecutive flushes reuse one kept-alive connection", "[http]") {
  TestServer server;
  auto sink = OpenSink("url: " + server.Url());
  for (int i = 0; i < 3; ++i) {
    Put(*sink, "k-" + std::to_string(i), Text("v"));
    REQUIRE(sink->Flush().ok());
  }
  const auto reqs = server.Requests();
  REQUIRE(reqs.size() == 3);
  CHECK(reqs[0].remote_port > 0);
  CHECK(reqs[1].remote_port == reqs[0].remote_port);
  CHECK(reqs[2].remote_port == reqs[0].remote_port);
  // A second sink has a connection of its own.
  auto other = OpenSink("url: " + server.Url());
  Put(*other, "o", Text("v"));
  REQUIRE(other->Flush().ok());
  CHECK(server.Requests().back().remote_port != reqs[0].remote_port);
}

TEST_CASE("http: a url that is not http:// or https:// fails Open", "[http]") {
  for (const std::string url :
       {"ftp://127.0.0.1/x", "file:///etc/passwd", "127.0.0.1:8080/x", "gopher://h/"}) {
    INFO(url);
    auto sink = MakeSink("url: \"" + url + "\"");
    const Status s = sink->Open("");
    CHECK(s.IsFatal());
    CHECK_THAT(s.message(), Catch::Contains("http:// or https://"));
  }
  // Only the scheme is shown: the rest of a url may hold credentials.
  const Status s = MakeSink("url: \"ftp://user:pw@h/x\"")->Open("");
  CHECK_THAT(s.message(), Catch::EndsWith("got ftp://") && !Catch::Contains("pw"));
  CHECK(MakeSink("url: HTTPS://example.invalid/x")->Open("").ok());
}

}  // namespace forkd::sinks
