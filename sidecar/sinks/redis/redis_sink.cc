#include "sinks/redis/redis_sink.h"

#include <hiredis/hiredis.h>

#include <algorithm>
#include <cctype>

#include "sinks/common/json.h"

namespace forkd::sinks {
namespace redis {
namespace {

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

bool PercentDecode(std::string_view in, std::string* out) {
  out->clear();
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out->push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) return false;
    const int hi = HexDigit(in[i + 1]), lo = HexDigit(in[i + 2]);
    if (hi < 0 || lo < 0) return false;
    out->push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return true;
}

bool AllDigits(std::string_view s) {
  return !s.empty() && s.size() <= 9 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// The first byte of a msgpack map or array.
bool IsContainer(uint8_t b) {
  return (b >= 0x80 && b <= 0x9f) || b == 0xdc || b == 0xdd || b == 0xde || b == 0xdf;
}

}  // namespace

bool ParseUrl(std::string_view text, Url* out, std::string* error) {
  *out = Url{};
  constexpr std::string_view kScheme = "redis://";
  if (text.rfind("rediss://", 0) == 0) {
    *error = "rediss:// (TLS) is not supported; use redis:// (over a TLS tunnel if needed)";
    return false;
  }
  if (text.rfind(kScheme, 0) != 0) {
    *error = "expected redis://[user:password@]host[:port][/db]";
    return false;
  }
  std::string_view rest = text.substr(kScheme.size());
  if (rest.find_first_of("?#") != std::string_view::npos) {
    *error = "query parameters are not supported: redis://[user:password@]host[:port][/db]";
    return false;
  }
  std::string_view path;
  if (const size_t slash = rest.find('/'); slash != std::string_view::npos) {
    path = rest.substr(slash + 1);
    rest = rest.substr(0, slash);
  }
  if (const size_t at = rest.rfind('@'); at != std::string_view::npos) {
    const std::string_view info = rest.substr(0, at);
    rest = rest.substr(at + 1);
    const size_t colon = info.find(':');
    if (colon == std::string_view::npos) {
      *error = "a user needs a password: redis://user:password@host (or redis://:password@host)";
      return false;
    }
    if (!PercentDecode(info.substr(0, colon), &out->user) ||
        !PercentDecode(info.substr(colon + 1), &out->password)) {
      *error = "bad percent-encoding in the user or password";
      return false;
    }
  }
  std::string_view port;
  if (!rest.empty() && rest.front() == '[') {
    const size_t close = rest.find(']');
    if (close == std::string_view::npos) {
      *error = "unclosed [ in the host";
      return false;
    }
    out->host.assign(rest.substr(1, close - 1));
    rest = rest.substr(close + 1);
    if (!rest.empty()) {
      if (rest.front() != ':') {
        *error = "expected :port after ]";
        return false;
      }
      port = rest.substr(1);
      if (port.empty()) port = "?";
    }
  } else if (const size_t colon = rest.rfind(':'); colon != std::string_view::npos) {
    out->host.assign(rest.substr(0, colon));
    port = rest.substr(colon + 1);
    if (port.empty()) port = "?";
  } else {
    out->host.assign(rest);
  }
  if (out->host.empty()) {
    *error = "no host: expected redis://[user:password@]host[:port][/db]";
    return false;
  }
  if (!port.empty()) {
    const int p = AllDigits(port) ? std::stoi(std::string(port)) : 0;
    if (p < 1 || p > 65535) {
      *error = "port '" + std::string(port) + "' is not a number from 1 to 65535";
      return false;
    }
    out->port = p;
  }
  if (!path.empty()) {
    if (!AllDigits(path)) {
      *error = "database '" + std::string(path) + "' is not a number (redis://host:port/0)";
      return false;
    }
    out->db = std::stoi(std::string(path));
  }
  return true;
}

std::string SafeUrl(const Url& u) {
  std::string s = "redis://";
  if (!u.user.empty()) s += u.user + "@";
  s += u.host.find(':') != std::string::npos ? "[" + u.host + "]" : u.host;
  s += ":" + std::to_string(u.port);
  if (u.db != 0) s += "/" + std::to_string(u.db);
  return s;
}

bool KeyTemplate::Parse(std::string_view text, std::string* error, size_t* column) {
  literals_.assign(1, std::string());
  paths_.clear();
  auto fail = [&](size_t at, std::string msg) {
    *error = std::move(msg);
    if (column != nullptr) *column = at;
    return false;
  };
  if (text.empty()) return fail(0, "must not be empty");
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '}') {
      if (i + 1 < text.size() && text[i + 1] == '}') {
        literals_.back().push_back('}');
        ++i;
        continue;
      }
      return fail(i, "unmatched '}' (write '}}' for a literal brace)");
    }
    if (c != '{') {
      literals_.back().push_back(c);
      continue;
    }
    if (i + 1 < text.size() && text[i + 1] == '{') {
      literals_.back().push_back('{');
      ++i;
      continue;
    }
    const size_t close = text.find('}', i + 1);
    if (close == std::string_view::npos) {
      return fail(i, "unclosed '{' (write '{{' for a literal brace)");
    }
    const std::string_view inner = text.substr(i + 1, close - i - 1);
    if (inner.empty()) return fail(i, "empty field name in {}");
    transforms::Path path;
    std::string why;
    size_t col = 0;
    if (!transforms::ParsePath(inner, &path, &why, &col)) {
      return fail(i + 1 + col, "field '" + std::string(inner) + "': " + why);
    }
    paths_.push_back(std::move(path));
    literals_.emplace_back();
    i = close;
  }
  return true;
}

bool KeyTemplate::Render(const transforms::Doc& doc, std::string* out, std::string* error) const {
  out->assign(literals_[0]);
  for (size_t i = 0; i < paths_.size(); ++i) {
    const transforms::RawValue v = doc.Lookup(paths_[i]);
    if (!v.found() || v.data[0] == 0xc0) {
      *error = "key: the record has no field " + paths_[i].text;
      return false;
    }
    if (IsContainer(v.data[0])) {
      *error = "key: field " + paths_[i].text + " is a map or an array, not a scalar";
      return false;
    }
    transforms::AppendText(v.data, out);
    out->append(literals_[i + 1]);
  }
  return true;
}

bool IsRetryable(std::string_view error) {
  const std::string_view word = error.substr(0, error.find(' '));
  static constexpr std::string_view kPassing[] = {
      "LOADING", "BUSY", "MASTERDOWN", "READONLY", "OOM", "MISCONF", "TRYAGAIN", "CLUSTERDOWN",
      "NOREPLICAS", "MOVED", "ASK", "NOAUTH", "WRONGPASS", "NOPERM", "NOSCRIPT", "UNBLOCKED",
      "EXECABORT"};
  for (std::string_view w : kPassing) {
    if (word == w) return true;
  }
  // Errors Redis reports as plain ERR about itself, not the command.
  return error.find("max number of clients") != std::string_view::npos;
}

}  // namespace redis

const std::vector<OptionSpec>& RedisSinkOptions() {
  static const std::vector<OptionSpec> specs = {
      {"url", OptType::kString, "",
       "Server: redis://[user:password@]host[:port][/db] (port 6379, db 0 by default; user and "
       "password percent-encoded; AUTH and SELECT are sent on connecting). No TLS (rediss://)",
       true},
      {"mode", OptType::kEnum, "stream",
       "stream: XADD each record to the stream `key`; publish: PUBLISH each record (as JSON) to "
       "the channel `key`, reaching only the subscribers connected at that moment",
       false, {"stream", "publish"}},
      {"key", OptType::kString, "",
       "The stream or channel; `{field}` takes a field of the record (`orders:{region}`, "
       "`{user.id}`), `{{` and `}}` are literal braces. A record without the field is "
       "dead-lettered",
       true},
      {"maxlen", OptType::kInt, "100000",
       "Stream mode: XADD trims the stream to about this many entries (MAXLEN ~ N); 0 keeps all",
       false, {}, 0},
      {"field", OptType::kString, "data",
       "Stream mode: the entry's field holding the record as JSON; the entry's other field is "
       "`_fork_id`, the event id (readers dedupe on it)"},
      {"timeout", OptType::kDuration, "5s",
       "Limit on connecting, and on each write and read of a batch's commands and replies", false,
       {}, 1, 3600000},
  };
  return specs;
}

bool CheckRedisOptions(const Options& o, std::string* error) {
  redis::Url url;
  std::string why;
  if (!redis::ParseUrl(o.Str("url"), &url, &why)) {
    *error = "url: " + why;
    return false;
  }
  redis::KeyTemplate key;
  if (!key.Parse(o.Str("key"), &why)) {
    *error = "key: " + why;
    return false;
  }
  const std::string& field = o.Str("field");
  if (field.empty() || field == "_fork_id") {
    *error = "field: must be a name other than _fork_id";
    return false;
  }
  return true;
}

std::unique_ptr<Sink> CreateRedisSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  RedisSink::Settings s;
  s.url = o.Str("url");
  s.mode = o.Str("mode") == "publish" ? RedisSink::Mode::kPublish : RedisSink::Mode::kStream;
  s.key = o.Str("key");
  s.maxlen = o.Int("maxlen");
  s.field = o.Str("field");
  s.timeout_ms = o.Millis("timeout");
  return std::make_unique<RedisSink>(std::move(s));
}

RedisSink::RedisSink(Settings s) : s_(std::move(s)) {
  std::string why;
  if (!redis::ParseUrl(s_.url, &url_, &why)) {
    error_ = "url: " + why;
  } else if (!key_.Parse(s_.key, &why)) {
    error_ = "key: " + why;
  } else if (s_.field.empty() || s_.field == "_fork_id") {
    error_ = "field: must be a name other than _fork_id";
  }
  safe_url_ = error_.empty() ? redis::SafeUrl(url_) : "redis";
  maxlen_text_ = std::to_string(s_.maxlen);
}

RedisSink::~RedisSink() { Disconnect(); }

Status RedisSink::Open(const std::string&) {
  if (!error_.empty()) return Status::Fatal(error_);
  opened_ = true;
  done_.clear();
  done_until_lsn_ = 0;
  // Connecting waits for the first Flush: a store that is down is a retry
  // there, with the pipeline's backoff.
  return Status::Ok();
}

void RedisSink::Disconnect() {
  if (c_ != nullptr) redisFree(c_);
  c_ = nullptr;
}

Status RedisSink::Connect() {
  timeval tv{};
  tv.tv_sec = static_cast<time_t>(s_.timeout_ms / 1000);
  tv.tv_usec = static_cast<suseconds_t>((s_.timeout_ms % 1000) * 1000);
  c_ = redisConnectWithTimeout(url_.host.c_str(), url_.port, tv);
  if (c_ == nullptr) return Status::Retry(safe_url_ + ": cannot allocate a connection");
  if (c_->err != 0) {
    const std::string why = c_->errstr;
    Disconnect();
    return Status::Retry(safe_url_ + ": cannot connect: " + why);
  }
  redisSetTimeout(c_, tv);
  redisEnableKeepAlive(c_);
  // A setup command; its failure (a wrong password, a db out of range) is a
  // problem of the store's configuration: retried, never dead letters.
  auto setup = [&](std::vector<std::string> args, const char* what) -> Status {
    std::vector<const char*> argv;
    std::vector<size_t> lens;
    for (const auto& a : args) {
      argv.push_back(a.data());
      lens.push_back(a.size());
    }
    auto* reply = static_cast<redisReply*>(
        redisCommandArgv(c_, static_cast<int>(argv.size()), argv.data(), lens.data()));
    if (reply == nullptr) {
      const std::string why = c_->errstr;
      Disconnect();
      return Status::Retry(safe_url_ + ": " + what + ": " + why);
    }
    std::string err;
    if (reply->type == REDIS_REPLY_ERROR) err.assign(reply->str, reply->len);
    freeReplyObject(reply);
    if (!err.empty()) {
      Disconnect();
      return Status::Retry(safe_url_ + ": " + what + ": " + err);
    }
    return Status::Ok();
  };
  if (!url_.password.empty()) {
    std::vector<std::string> args = {"AUTH"};
    if (!url_.user.empty()) args.push_back(url_.user);
    args.push_back(url_.password);
    if (Status st = setup(std::move(args), "AUTH"); !st.ok()) return st;
  }
  if (url_.db != 0) {
    if (Status st = setup({"SELECT", std::to_string(url_.db)}, "SELECT"); !st.ok()) return st;
  }
  return Status::Ok();
}

std::string RedisSink::Signature(const Command& c) {
  std::string s;
  s.reserve(c.id.size() + c.key.size() + c.json.size() + 2);
  s.append(c.id).push_back('\0');
  s.append(c.key).push_back('\0');
  s.append(c.json);
  return s;
}

void RedisSink::Write(const Record& r) {
  const uint64_t lsn = r.header != nullptr ? r.header->lsn : 0;
  if (done_until_lsn_ != 0 && lsn > done_until_lsn_) {
    done_.clear();
    done_until_lsn_ = 0;
  }
  Command c;
  c.id.assign(r.event_id);
  c.lsn = lsn;
  std::string why;
  if (key_.has_fields()) {
    doc_.Clear();
    doc_.Load(r.payload, r.payload_size);
    if (!key_.Render(doc_, &c.key, &why)) c.bad_key = true;
  } else {
    c.key = s_.key;
  }
  if (c.bad_key) {
    c.json = std::move(why);
  } else {
    AppendJsonLine(r.event_id, r.payload, r.payload_size, &c.json);
    c.json.pop_back();  // the line's "\n"
  }
  if (!done_.empty() && done_.count(Signature(c)) != 0) return;  // the store has it
  bytes_ += c.id.size() + c.key.size() + c.json.size();
  batch_.push_back(std::move(c));
}

Status RedisSink::Flush() {
  if (batch_.empty()) return Status::Ok();
  if (!opened_) return Status::Fatal("redis sink flushed before Open");
  if (c_ == nullptr) {
    if (Status st = Connect(); !st.ok()) return st;
  }
  const bool stream = s_.mode == Mode::kStream;
  const std::string_view verb = stream ? "XADD" : "PUBLISH";
  // Every command first (hiredis buffers them), then every reply.
  std::vector<size_t> sent;  // indexes into batch_
  for (size_t i = 0; i < batch_.size(); ++i) {
    const Command& c = batch_[i];
    if (c.bad_key) continue;
    const char* argv[10];
    size_t lens[10];
    int n = 0;
    auto arg = [&](std::string_view a) {
      argv[n] = a.data();
      lens[n] = a.size();
      ++n;
    };
    arg(verb);
    arg(c.key);
    if (stream) {
      if (s_.maxlen > 0) {
        arg("MAXLEN");
        arg("~");
        arg(maxlen_text_);
      }
      arg("*");
      arg("_fork_id");
      arg(c.id);
      arg(s_.field);
    }
    arg(c.json);
    if (redisAppendCommandArgv(c_, n, argv, lens) != REDIS_OK) {
      const std::string why = c_->errstr;
      Disconnect();
      return Status::Retry(safe_url_ + ": " + why);
    }
    sent.push_back(i);
  }
  std::vector<bool> ok(batch_.size(), false);
  std::string retry_error, fatal_error;
  bool broken = false;
  for (size_t i : sent) {
    void* raw = nullptr;
    if (redisGetReply(c_, &raw) != REDIS_OK || raw == nullptr) {
      // Commands after this one may or may not have run: all are resent.
      retry_error = safe_url_ + ": " + c_->errstr;
      broken = true;
      break;
    }
    auto* reply = static_cast<redisReply*>(raw);
    if (reply->type != REDIS_REPLY_ERROR) {
      ok[i] = true;
    } else {
      const std::string_view err(reply->str, reply->len);
      const std::string msg =
          std::string(verb) + " " + batch_[i].key + " at " + safe_url_ + ": " + std::string(err);
      if (redis::IsRetryable(err)) {
        if (retry_error.empty()) retry_error = msg;
      } else if (fatal_error.empty()) {
        fatal_error = msg;
      }
    }
    freeReplyObject(reply);
  }
  if (broken) Disconnect();
  if (retry_error.empty() && fatal_error.empty()) {
    // A record whose key cannot be made is refused like a command would be.
    for (const Command& c : batch_) {
      if (c.bad_key && fatal_error.empty()) fatal_error = c.json;
    }
  }
  if (retry_error.empty() && fatal_error.empty()) {
    Clear();
    return Status::Ok();
  }
  // Not all delivered: what the store took is never sent again, neither in
  // the batch kept for a retry nor while the pipeline splits a refused one.
  std::vector<Command> left;
  for (size_t i = 0; i < batch_.size(); ++i) {
    done_until_lsn_ = std::max(done_until_lsn_, batch_[i].lsn);
    if (ok[i]) {
      done_.insert(Signature(batch_[i]));
    } else {
      left.push_back(std::move(batch_[i]));
    }
  }
  batch_ = std::move(left);
  bytes_ = 0;
  for (const Command& c : batch_) bytes_ += c.id.size() + c.key.size() + c.json.size();
  if (!retry_error.empty()) return Status::Retry(std::move(retry_error));
  return Status::Fatal(std::move(fatal_error));
}

void RedisSink::Clear() {
  batch_.clear();
  bytes_ = 0;
}

void RedisSink::Discard() { Clear(); }

}  // namespace forkd::sinks
