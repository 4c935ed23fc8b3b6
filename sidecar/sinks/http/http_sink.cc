#include "sinks/http/http_sink.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <climits>

#include "sinks/common/json.h"
#include "wire/hex.h"

namespace forkd::sinks {
namespace {

constexpr size_t kMaxPlainKey = 200;  // longest event id sent as its own key

// Headers the sink sets itself; configuring them is an error.
constexpr std::string_view kReserved[] = {"content-length", "content-encoding", "transfer-encoding",
                                          "idempotency-key", "x-fork-count"};

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

// An HTTP token (RFC 9110 tchar), as header names are.
bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if (std::isalnum(u)) continue;
    if (std::string_view("!#$%&'*+-.^_`|~").find(c) == std::string_view::npos) return false;
  }
  return true;
}

// A header value: no CR, LF or other control characters but HTAB.
bool IsFieldValue(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && u != '\t') || u == 0x7f) return false;
  }
  return true;
}

bool IsPrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

}  // namespace

const std::vector<OptionSpec>& HttpSinkOptions() {
  static const std::vector<OptionSpec> specs = {
      {"url", OptType::kString, "", "Endpoint that receives each batch (http:// or https://)",
       true},
      {"method", OptType::kEnum, "POST", "HTTP method of each request", false, {"POST", "PUT"}},
      {"format", OptType::kEnum, "ndjson",
       "Request body: ndjson (one JSON object per line) or json (one JSON array)", false,
       {"ndjson", "json"}},
      {"gzip", OptType::kBool, "false", "Gzip the body and send Content-Encoding: gzip"},
      {"headers", OptType::kNode, "",
       "Extra request headers: a map of name to value; values may use ${ENV}"},
      {"timeout", OptType::kDuration, "10s", "Limit on a whole request, connecting included",
       false, {}, 1, 3600000},
      {"connect_timeout", OptType::kDuration, "2s", "Limit on establishing the connection", false,
       {}, 1, 3600000},
  };
  return specs;
}

std::unique_ptr<Sink> CreateHttpSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  HttpSink::Settings s;
  s.url = o.Str("url");
  s.put = o.Str("method") == "PUT";
  s.format = o.Str("format") == "json" ? HttpSink::Format::kJson : HttpSink::Format::kNdjson;
  s.gzip = o.Bool("gzip");
  s.timeout_ms = o.Millis("timeout");
  s.connect_timeout_ms = o.Millis("connect_timeout");
  // The loader leaves a kNode as it is: ${ENV} in the values is read here.
  // Messages name the header and the variable, never a value.
  const YAML::Node& h = o.Node("headers");
  if (h.IsDefined() && !h.IsNull()) {
    if (!h.IsMap()) {
      s.error = "headers: expected a map of header name to value";
    } else {
      for (auto it = h.begin(); it != h.end() && s.error.empty(); ++it) {
        const std::string name = it->first.IsScalar() ? it->first.Scalar() : std::string();
        if (!it->second.IsScalar()) {
          s.error = "headers." + name + ": expected a string value";
          break;
        }
        std::string value, missing;
        if (!Interpolate(it->second.Scalar(), &value, &missing)) {
          s.error = "headers." + name + ": environment variable ${" + missing + "} is not set";
          break;
        }
        s.headers.emplace_back(name, std::move(value));
      }
    }
  }
  return std::make_unique<HttpSink>(std::move(s));
}

HttpSink::HttpSink(Settings s) : s_(std::move(s)) {
  safe_url_ = SafeUrl(s_.url);
  sha_ = EVP_MD_CTX_new();
  sha_fin_ = EVP_MD_CTX_new();
}

HttpSink::~HttpSink() {
  if (z_ != nullptr) {
    deflateEnd(z_);
    delete z_;
  }
  EVP_MD_CTX_free(sha_);
  EVP_MD_CTX_free(sha_fin_);
}

Status HttpSink::Open(const std::string&) {
  if (!s_.error.empty()) return Status::Fatal(s_.error);
  if (std::string bad = CheckHttpUrl(s_.url); !bad.empty()) return Status::Fatal(bad);
  fixed_headers_.clear();
  bool own_type = false;
  for (const auto& [name, value] : s_.headers) {
    if (!IsToken(name)) return Status::Fatal("headers: '" + name + "' is not a valid header name");
    if (!IsFieldValue(value)) {
      return Status::Fatal("headers." + name + ": the value contains a control character");
    }
    for (std::string_view r : kReserved) {
      if (IEquals(name, r)) return Status::Fatal("headers." + name + ": set by the sink itself");
    }
    if (IEquals(name, "content-type")) own_type = true;
    // "Name;" is how curl sends a header with an empty value.
    fixed_headers_.push_back(value.empty() ? name + ";" : name + ": " + value);
  }
  if (!own_type) {
    fixed_headers_.push_back(s_.format == Format::kJson ? "Content-Type: application/json"
                                                        : "Content-Type: application/x-ndjson");
  }
  if (s_.gzip) fixed_headers_.push_back("Content-Encoding: gzip");
  fixed_headers_.push_back("Expect:");  // no 100-continue round trip for large bodies

  if (s_.gzip && z_ == nullptr) {
    z_ = new z_stream{};
    if (deflateInit2(z_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
        Z_OK) {
      delete z_;
      z_ = nullptr;
      return Status::Fatal("gzip: cannot initialise zlib");
    }
  }
  if (sha_ == nullptr || sha_fin_ == nullptr) return Status::Fatal("cannot allocate SHA-256");
  if (!conn_.Init(s_.timeout_ms, s_.connect_timeout_ms)) {
    return Status::Retry("cannot create a curl handle");
  }
  opened_ = true;
  CURL* c = conn_.get();
  curl_easy_setopt(c, CURLOPT_URL, s_.url.c_str());
  if (s_.put) curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, "PUT");
  return Status::Ok();
}

void HttpSink::Write(const Record& r) {
  if (count_ == 0) {
    first_id_.assign(r.event_id);
    EVP_DigestInit_ex(sha_, EVP_sha256(), nullptr);
  } else {
    EVP_DigestUpdate(sha_, "\n", 1);
  }
  EVP_DigestUpdate(sha_, r.event_id.data(), r.event_id.size());
  ++count_;
  key_valid_ = gz_valid_ = false;
  if (s_.format == Format::kNdjson) {
    AppendJsonLine(r.event_id, r.payload, r.payload_size, &body_);
    return;
  }
  // The body stays a complete JSON array: "[" or the last "]" becomes the
  // separator, the line's "\n" the closing bracket.
  if (body_.empty()) {
    body_.push_back('[');
  } else {
    body_.back() = ',';
  }
  AppendJsonLine(r.event_id, r.payload, r.payload_size, &body_);
  body_.back() = ']';
}

const std::string& HttpSink::IdempotencyKey() {
  if (key_valid_) return key_;
  key_valid_ = true;
  if (count_ == 1 && first_id_.size() <= kMaxPlainKey && IsPrintableAscii(first_id_)) {
    key_ = first_id_;
    return key_;
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  // Finish a copy: the batch may still grow after a retry.
  EVP_MD_CTX_copy_ex(sha_fin_, sha_);
  EVP_DigestFinal_ex(sha_fin_, md, &len);
  key_.resize(len * 2);
  wire::HexTo(md, len, key_.data());
  return key_;
}

Status HttpSink::Compress() {
  if (gz_valid_) return Status::Ok();
  if (deflateReset(z_) != Z_OK) return Status::Fatal("gzip: deflateReset failed");
  gz_.resize(deflateBound(z_, body_.size()));
  z_->next_in = reinterpret_cast<Bytef*>(body_.data());
  size_t in_left = body_.size();
  size_t out = 0;
  int rc = Z_OK;
  while (rc != Z_STREAM_END) {
    if (out == gz_.size()) gz_.resize(gz_.size() * 2 + 64);
    const uInt in_now = static_cast<uInt>(std::min<size_t>(in_left, UINT_MAX));
    const uInt out_now = static_cast<uInt>(std::min<size_t>(gz_.size() - out, UINT_MAX));
    z_->avail_in = in_now;
    z_->next_out = reinterpret_cast<Bytef*>(gz_.data() + out);
    z_->avail_out = out_now;
    rc = deflate(z_, in_now == in_left ? Z_FINISH : Z_NO_FLUSH);
    if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) {
      return Status::Fatal("gzip: deflate failed (" + std::to_string(rc) + ")");
    }
    in_left -= in_now - z_->avail_in;
    out += out_now - z_->avail_out;
  }
  gz_.resize(out);
  gz_valid_ = true;
  return Status::Ok();
}

void HttpSink::ReadRetryAfter(const CurlConnection& conn) {
  struct curl_header* h = nullptr;
  if (curl_easy_header(conn.get(), "Retry-After", 0, CURLH_HEADER, -1, &h) != CURLHE_OK) return;
  std::string_view v = h->value;
  while (!v.empty() && (v.front() == ' ' || v.front() == '\t')) v.remove_prefix(1);
  while (!v.empty() && (v.back() == ' ' || v.back() == '\t')) v.remove_suffix(1);
  if (v.empty()) return;
  if (std::all_of(v.begin(), v.end(), [](char c) { return c >= '0' && c <= '9'; })) {
    // delta-seconds, capped far beyond any backoff so it cannot overflow.
    int64_t secs = 0;
    for (char c : v) {
      secs = secs * 10 + (c - '0');
      if (secs > 1000000000) break;
    }
    retry_after_ms_ = std::min<int64_t>(secs, 1000000000) * 1000;
    return;
  }
  // An HTTP-date.
  const std::string date(v);
  const time_t t = curl_getdate(date.c_str(), nullptr);
  if (t == -1) return;
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  retry_after_ms_ = std::max<int64_t>(0, static_cast<int64_t>(t) * 1000 - now_ms);
}

curl_slist* HttpSink::Headers() {
  curl_slist* headers = nullptr;
  for (const auto& line : fixed_headers_) headers = curl_slist_append(headers, line.c_str());
  headers = curl_slist_append(headers, ("Idempotency-Key: " + IdempotencyKey()).c_str());
  return curl_slist_append(headers, ("X-Fork-Count: " + std::to_string(count_)).c_str());
}

Status HttpSink::Answer(const CurlConnection& conn, bool answered) {
  if (!answered) {
    // Refused, timed out, unresolvable, reset: the store may be back later.
    return Status::Retry(std::string(s_.put ? "PUT " : "POST ") + safe_url_ +
                         " failed: " + conn.error());
  }
  const long code = conn.status();
  if (code >= 200 && code < 300) return Status::Ok();
  std::string msg = "http " + std::to_string(code) + " from " + safe_url_;
  const std::string excerpt = Excerpt(conn.body());
  if (!excerpt.empty()) msg += ": " + excerpt;
  if (code == 408 || code == 429 || (code >= 500 && code < 600)) {
    ReadRetryAfter(conn);
    return Status::Retry(std::move(msg));
  }
  return Status::Fatal(std::move(msg));
}

Status HttpSink::Flush() {
  retry_after_ms_ = -1;
  if (count_ == 0) return Status::Ok();
  if (!opened_) return Status::Fatal("http sink flushed before Open");
  const std::string* body = &body_;
  if (s_.gzip) {
    Status st = Compress();
    if (!st.ok()) return st;
    body = &gz_;
  }
  curl_slist* headers = Headers();
  CURL* c = conn_.get();
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->data());
  curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body->size()));
  const bool answered = conn_.Perform();
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, nullptr);
  curl_slist_free_all(headers);
  Status st = Answer(conn_, answered);
  if (st.ok()) Clear();
  return st;
}

Status HttpSink::Send(uint64_t ticket) {
  if (!opened_) return Status::Fatal("http sink flushed before Open");
  if (s_.gzip) {
    Status st = Compress();
    if (!st.ok()) return st;
  }
  // Taken last: a Send that fails leaves no lane waiting for an Await.
  CurlLane* lane = lanes_.Take(ticket, s_.timeout_ms, s_.connect_timeout_ms);
  if (lane == nullptr) return Status::Retry("cannot create a curl handle");
  if (s_.gzip) {
    lane->body.swap(gz_);
  } else {
    lane->body.swap(body_);
  }
  lane->url = s_.url;
  lane->SetHeaders(Headers());
  if (s_.put) curl_easy_setopt(lane->conn.get(), CURLOPT_CUSTOMREQUEST, "PUT");
  Clear();
  body_.clear();
  gz_.clear();
  lanes_.Post(lane);
  return Status::Ok();
}

Status HttpSink::Await(uint64_t ticket) {
  retry_after_ms_ = -1;
  const CurlLane* lane = lanes_.Await(ticket);
  if (lane == nullptr) return Status::Fatal("http: no batch " + std::to_string(ticket) + " was sent");
  return Answer(lane->conn, lane->conn.error().empty());
}

void HttpSink::Clear() {
  body_.clear();
  count_ = 0;
  key_valid_ = gz_valid_ = false;
}

void HttpSink::Discard() { Clear(); }

}  // namespace forkd::sinks
