// What the sinks that speak HTTP through libcurl share (http, clickhouse):
// one easy handle per sink, so one kept-alive connection reused across
// batches; urls and response bodies made fit for messages.
//
// Threads: a CurlConnection belongs to one pipeline thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

typedef void CURL;  // as <curl/curl.h> declares them
typedef void CURLM;
struct curl_slist;

namespace forkd::sinks {

// The url without user info, query or fragment: what messages may show.
std::string SafeUrl(const std::string& url);
constexpr size_t kExcerptBytes = 200;
// The first `max` bytes of a response body, on one line (control characters
// become spaces), never cutting a UTF-8 sequence in two.
std::string Excerpt(const std::string& body, size_t max = kExcerptBytes);
// Empty when `url` is http:// or https:// without white space; otherwise why
// not, showing nothing of the url but its scheme (the rest may hold
// credentials).
std::string CheckHttpUrl(const std::string& url);

class CurlConnection {
 public:
  CurlConnection();
  ~CurlConnection();
  CurlConnection(const CurlConnection&) = delete;
  CurlConnection& operator=(const CurlConnection&) = delete;

  // Creates the handle (once) with what every request wants: http and https
  // only, no redirects, no signals, TCP keep-alive, the limits, forkd as the
  // user agent, and the response body kept (see keep_body). False when curl
  // cannot make a handle.
  bool Init(int64_t timeout_ms, int64_t connect_timeout_ms);
  // The handle, for the request's own options (url, headers, body).
  CURL* get() const { return curl_; }
  // How much of each response body to keep: kExcerptBytes + 1 by default
  // (one byte past the excerpt says it was cut).
  void keep_body(size_t bytes) { keep_ = bytes; }

  // Performs the request set up on get(). True when an HTTP answer came
  // back (status() and body() say which); false on a network error, timeout
  // included (error() says what).
  bool Perform();
  // The same in two steps, for a CurlMulti: Begin clears the last answer,
  // Finish takes curl's result for the transfer (what Perform returns).
  void Begin();
  bool Finish(int curl_code);
  bool finished() const { return finished_; }
  long status() const { return status_; }
  const std::string& body() const { return body_; }
  const std::string& error() const { return error_; }

 private:
  static size_t Keep(char* p, size_t size, size_t n, void* user);

  CURL* curl_ = nullptr;
  size_t keep_ = kExcerptBytes + 1;
  long status_ = 0;
  std::string body_;
  std::string error_;
  char error_buf_[256] = {0};
  bool finished_ = true;
};

// Several requests on their way at once, from one thread: each is a
// CurlConnection's (so its own kept-alive connection); Start sets it off,
// and Wait drives all of them until the one waited for is answered.
class CurlMulti {
 public:
  CurlMulti();
  ~CurlMulti();
  CurlMulti(const CurlMulti&) = delete;
  CurlMulti& operator=(const CurlMulti&) = delete;

  // Starts the request set up on c->get(). False when curl refuses it
  // (c->error() says why); it is then finished.
  bool Start(CurlConnection* c);
  // Until c's request is answered or failed (c->Finish has been called).
  void Wait(CurlConnection* c);
  // Stops every request still on its way; they finish as failed.
  void Abort();

 private:
  CURLM* multi_ = nullptr;
  std::vector<CurlConnection*> running_;
};

// A batch on its way, for a sink that pipelines (Sink::Send/Await): its own
// connection, and the url, headers and body that must live until the answer.
struct CurlLane {
  CurlLane() = default;
  ~CurlLane();
  CurlLane(const CurlLane&) = delete;
  CurlLane& operator=(const CurlLane&) = delete;
  // Replaces the header list (the lane owns it).
  void SetHeaders(curl_slist* h);

  CurlConnection conn;
  std::string url;
  std::string body;
  curl_slist* headers = nullptr;
  uint64_t ticket = 0;  // 0: free
};

// The lanes of one sink, driven by one CurlMulti on the pipeline's thread.
class CurlLanes {
 public:
  CurlLanes() = default;
  ~CurlLanes();
  CurlLanes(const CurlLanes&) = delete;
  CurlLanes& operator=(const CurlLanes&) = delete;

  // A free lane for `ticket`, a new connection when none is free; nullptr
  // when curl cannot make a handle.
  CurlLane* Take(uint64_t ticket, int64_t timeout_ms, int64_t connect_timeout_ms);
  // Sets off the POST of lane->body to lane->url with lane->headers (a
  // refusal by curl is the answer Await gives).
  void Post(CurlLane* lane);
  // Waits for the answer to `ticket`'s request and frees its lane, which
  // keeps the answer (conn.status(), error(), body()) until taken again;
  // nullptr when nothing was sent for `ticket`.
  CurlLane* Await(uint64_t ticket);

 private:
  std::vector<std::unique_ptr<CurlLane>> lanes_;
  CurlMulti multi_;  // after lanes_: it lets go of their handles before they go
};

}  // namespace forkd::sinks
