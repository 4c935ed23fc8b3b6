// The `redis` sink: each record becomes one entry of a Redis stream
// (`mode: stream`, XADD key MAXLEN ~ N * _fork_id <id> data <json>) or one
// message on a channel (`mode: publish`, PUBLISH key <json>), where <json> is
// the record as a JSON object with its event id as `_fork_id`, the first key
// (the same object the file sink writes as a line). `key` may name fields of
// the record, `orders:{region}`; `{{` and `}}` are literal braces.
//
// A Flush is one pipelined round trip: every command of the batch written,
// then every reply read, on one connection kept across batches (connected,
// AUTH and SELECT sent, on the first Flush and again after it broke). Over
// hiredis (blocking, `timeout` on connecting and on each read and write).
// No TLS: `rediss://` is refused; no Redis Cluster or Sentinel.
//
// Answers. A refused connection, a timeout, a broken connection and the
// store's passing conditions (LOADING, BUSY, MASTERDOWN, READONLY, OOM,
// MISCONF, TRYAGAIN, CLUSTERDOWN, NOREPLICAS, MOVED, ASK, a wrong password
// or a missing permission: NOAUTH, WRONGPASS, NOPERM) are retries: nothing is
// dead-lettered for a problem of the store. Any other error reply (WRONGTYPE:
// the key holds something else than a stream; a value over the server's
// limits) can never succeed for that record: the Flush is fatal, with
// Redis's message, and the pipeline splits the batch down to the refused
// records.
//
// Delivery is at least once, and Redis has no key to dedupe on: XADD cannot
// take `_fork_id` as its entry id (ids must be increasing numbers), so
//  - commands the server answered are never sent again: after a retry or a
//    fatal answer only the records without a success are resent (records
//    that succeeded in a refused batch are skipped while the pipeline splits
//    it);
//  - a connection that breaks after a batch was written leaves it unknown
//    which commands ran: the whole remainder is sent again, and a stream may
//    then hold an entry twice. Readers dedupe on `_fork_id`.
// PUBLISH is fire and forget: a message reaches the subscribers connected at
// that moment and is not kept; a resent one reaches them twice.
//
// Threads: the pipeline's thread only. Flush blocks for up to a few
// `timeout`s.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_set>
#include <vector>

#include "core/options.h"
#include "sinks/sink.h"
#include "transforms/record.h"

struct redisContext;

namespace forkd::sinks {

const std::vector<OptionSpec>& RedisSinkOptions();
std::unique_ptr<Sink> CreateRedisSink(const SinkContext& ctx);
// For `forkd check`: the url and the key template. The error starts with
// the option it is about.
bool CheckRedisOptions(const Options& o, std::string* error);

// Exposed for tests.
namespace redis {

// redis://[[user]:password@]host[:port][/db]; user and password are
// percent-decoded.
struct Url {
  std::string host;
  int port = 6379;
  std::string user;
  std::string password;
  int db = 0;
};
// False with *error when `text` is not such a url.
[[nodiscard]] bool ParseUrl(std::string_view text, Url* out, std::string* error);
// The url for messages: no password.
std::string SafeUrl(const Url& u);

// A key with `{field.path}` holes filled from the record.
class KeyTemplate {
 public:
  // False with *error (and *column, 0-based) when `text` is malformed.
  [[nodiscard]] bool Parse(std::string_view text, std::string* error, size_t* column = nullptr);
  bool has_fields() const { return !paths_.empty(); }
  // The key for `doc`; false with *error naming the field when a field is
  // missing or is a map or an array.
  [[nodiscard]] bool Render(const transforms::Doc& doc, std::string* out,
                            std::string* error) const;

 private:
  std::vector<std::string> literals_;  // literals_[i] precedes paths_[i]; one more
  std::vector<transforms::Path> paths_;
};

// True when an error reply (its first word: WRONGTYPE, LOADING...) may
// succeed later as it is.
bool IsRetryable(std::string_view error);

}  // namespace redis

class RedisSink : public Sink {
 public:
  enum class Mode { kStream, kPublish };
  struct Settings {
    std::string url;
    Mode mode = Mode::kStream;
    std::string key;
    int64_t maxlen = 100000;  // 0: no trimming
    std::string field = "data";
    int64_t timeout_ms = 5000;
  };
  explicit RedisSink(Settings s);
  ~RedisSink() override;
  RedisSink(const RedisSink&) = delete;
  RedisSink& operator=(const RedisSink&) = delete;

  Status Open(const std::string& state) override;
  void Write(const Record& r) override;
  size_t buffered_bytes() const override { return bytes_; }
  Status Flush() override;
  void Discard() override;

 private:
  struct Command {
    std::string id;
    std::string key;
    std::string json;  // the record as JSON (or why its key cannot be made)
    bool bad_key = false;
    uint64_t lsn = 0;
  };
  static std::string Signature(const Command& c);
  Status Connect();
  void Disconnect();
  void Clear();

  Settings s_;
  redis::Url url_;
  std::string safe_url_;
  redis::KeyTemplate key_;
  std::string error_;  // from the options; Open reports it
  redisContext* c_ = nullptr;
  bool opened_ = false;

  std::vector<Command> batch_;
  size_t bytes_ = 0;
  transforms::Doc doc_;
  std::string maxlen_text_;

  // Records of a refused batch that the store did take (id, key and JSON):
  // skipped when the pipeline writes them again while splitting the batch,
  // forgotten once it writes past the batch.
  std::unordered_set<std::string> done_;
  uint64_t done_until_lsn_ = 0;
};

}  // namespace forkd::sinks
