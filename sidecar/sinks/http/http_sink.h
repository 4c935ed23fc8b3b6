// The `http` sink: each batch is one POST (or PUT) to `url`, as JSON Lines
// (application/x-ndjson) or a JSON array (application/json), gzipped on
// request. Every record is a JSON object with its event id as `_fork_id`, the
// first key, the same shape the file sink writes.
//
// A batch is sent with `Idempotency-Key` (the event id of a batch of one; the
// lowercase hex SHA-256 of the ids joined by "\n" otherwise, so a resent batch
// has the same key) and `X-Fork-Count`. 2xx is ok; 408, 429, 5xx and network
// errors are retries (the batch is kept and sent again whole; Retry-After is
// passed on to the pipeline); anything else (3xx, other 4xx) is fatal.
// Redirects are not followed. One connection is kept alive across batches.
//
// The Idempotency-Key of a batch of one is its event id only when that id is
// printable ASCII of at most 200 bytes (an idempotencyKey from a client may be
// anything); otherwise it is the SHA-256 of the id, like a larger batch's.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/options.h"
#include "sinks/common/curl.h"
#include "sinks/sink.h"

struct evp_md_ctx_st;
struct z_stream_s;

namespace forkd::sinks {

const std::vector<OptionSpec>& HttpSinkOptions();
std::unique_ptr<Sink> CreateHttpSink(const SinkContext& ctx);

class HttpSink : public Sink {
 public:
  enum class Format { kNdjson, kJson };
  struct Settings {
    std::string url;
    bool put = false;  // PUT instead of POST
    Format format = Format::kNdjson;
    bool gzip = false;
    std::vector<std::pair<std::string, std::string>> headers;  // name, value
    int64_t timeout_ms = 10000;
    int64_t connect_timeout_ms = 2000;
    // A problem found while reading the options (a bad header, an unset
    // ${VAR}); Open() reports it. Never contains a header's value.
    std::string error;
  };
  explicit HttpSink(Settings s);
  ~HttpSink() override;
  HttpSink(const HttpSink&) = delete;
  HttpSink& operator=(const HttpSink&) = delete;

  Status Open(const std::string& state) override;
  void Write(const Record& r) override;
  size_t buffered_bytes() const override { return body_.size(); }
  Status Flush() override;
  void Discard() override;
  int64_t retry_after_ms() const override { return retry_after_ms_; }
  // With `batch.in_flight` set above 1, several batches on their way, each
  // on its own connection; a receiver then sees them in any order.
  bool pipelines() const override { return true; }
  bool pipelines_by_default() const override { return false; }
  Status Send(uint64_t ticket) override;
  Status Await(uint64_t ticket) override;

 private:
  void Clear();
  const std::string& IdempotencyKey();
  Status Compress();
  // The request headers of the batch: the fixed ones, Idempotency-Key and
  // X-Fork-Count.
  curl_slist* Headers();
  // The answer on `conn`: ok, retry (with Retry-After read) or fatal.
  Status Answer(const CurlConnection& conn, bool answered);
  void ReadRetryAfter(const CurlConnection& conn);

  Settings s_;
  std::string safe_url_;  // the url for messages: no user info, query or fragment

  // The batch: the request body as it will be sent (a complete JSON array in
  // json format), and what the idempotency key is made of.
  std::string body_;
  size_t count_ = 0;
  std::string first_id_;          // the key of a batch of one
  evp_md_ctx_st* sha_ = nullptr;  // SHA-256 over the ids so far, "\n" between
  evp_md_ctx_st* sha_fin_ = nullptr;
  std::string key_;  // computed at Flush, kept while the batch is
  bool key_valid_ = false;

  z_stream_s* z_ = nullptr;
  std::string gz_;  // the gzipped body, kept while the batch is
  bool gz_valid_ = false;

  CurlConnection conn_;  // reused: one kept-alive connection
  CurlLanes lanes_;      // batches sent with Send, each on its own connection
  bool opened_ = false;
  std::vector<std::string> fixed_headers_;  // "Name: value" lines sent with every batch
  int64_t retry_after_ms_ = -1;
};

}  // namespace forkd::sinks
