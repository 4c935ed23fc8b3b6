#include "sinks/postgres/postgres_sink.h"

#include <libpq-fe.h>
#include <poll.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <unordered_map>

#include "sinks/common/json.h"
#include "wire/msgpack.h"

namespace forkd::sinks {
namespace pg {

bool SqlStateRetries(std::string_view s) {
  if (s.size() != 5) return true;  // not from the server: the connection's problem
  const std::string_view cls = s.substr(0, 2);
  // The records themselves are refused: bad data (22), constraints (23),
  // cardinality (21), WITH CHECK OPTION (44), a row or key too large (54),
  // an exception raised by a trigger (P0), unsupported (0A).
  if (cls == "22" || cls == "23" || cls == "21" || cls == "44" || cls == "54" || cls == "P0" ||
      cls == "0A") {
    return false;
  }
  if (cls == "40") return s != "40002";  // serialization, deadlock: retry; deferred constraint: not
  if (cls == "42") {
    // Undefined or mistyped columns and tables are about these records; a
    // missing privilege or unique index is the operator's to fix, and every
    // record alike waits for it.
    return s == "42501" || s == "42P10";
  }
  // Connection (08), resources (53), shutdown and cancels (57), system (58),
  // locks (55), read-only standby (25), internal (XX), anything else: the
  // same batch may well succeed later.
  return true;
}

std::string QuoteIdent(std::string_view name) {
  std::string out;
  out.reserve(name.size() + 2);
  out.push_back('"');
  for (char c : name) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

void AppendCopyText(std::string_view s, std::string* out) {
  size_t from = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const char c = s[i];
    const char* esc = nullptr;
    switch (c) {
      case '\\': esc = "\\\\"; break;
      case '\n': esc = "\\n"; break;
      case '\r': esc = "\\r"; break;
      case '\t': esc = "\\t"; break;
      default: continue;
    }
    out->append(s.data() + from, i - from);
    out->append(esc);
    from = i + 1;
  }
  out->append(s.data() + from, s.size() - from);
}

std::string SafeUrl(const std::string& url) {
  const size_t scheme_end = url.find("://");
  if (scheme_end == std::string::npos) return "postgres (url not shown)";
  const size_t host = scheme_end + 3;
  size_t end = url.find_first_of("?#", host);
  if (end == std::string::npos) end = url.size();
  const size_t path = std::min(url.find('/', host), end);
  const size_t at = url.rfind('@', path);
  const size_t from = (at != std::string::npos && at >= host && at < path) ? at + 1 : host;
  return url.substr(0, host) + url.substr(from, end - from);
}

namespace {

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string PercentDecode(std::string_view s) {
  std::string out;
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out.push_back(static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2])));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

void ReplaceAll(std::string* s, const std::string& what, std::string_view with) {
  if (what.empty()) return;
  for (size_t at = s->find(what); at != std::string::npos; at = s->find(what, at + with.size())) {
    s->replace(at, what.size(), with);
  }
}

// The secrets a url may hold: the password of its user info and of a
// password= parameter, as written and percent-decoded.
std::vector<std::string> Secrets(const std::string& url) {
  std::vector<std::string> out;
  const size_t scheme_end = url.find("://");
  if (scheme_end != std::string::npos) {
    const size_t host = scheme_end + 3;
    const size_t end = std::min(url.find_first_of("/?#", host), url.size());
    const size_t at = url.rfind('@', end);
    if (at != std::string::npos && at >= host && at < end) {
      const size_t colon = url.find(':', host);
      if (colon != std::string::npos && colon < at) out.push_back(url.substr(colon + 1, at - colon - 1));
    }
  }
  for (size_t p = url.find("password="); p != std::string::npos; p = url.find("password=", p + 1)) {
    const size_t v = p + 9;
    const size_t e = std::min(url.find_first_of("&# ", v), url.size());
    out.push_back(url.substr(v, e - v));
  }
  const size_t n = out.size();
  for (size_t i = 0; i < n; ++i) out.push_back(PercentDecode(out[i]));
  std::erase_if(out, [](const std::string& s) { return s.empty(); });
  // Longest first, so a secret that contains another is replaced whole.
  std::sort(out.begin(), out.end(), [](const auto& a, const auto& b) { return a.size() > b.size(); });
  return out;
}

}  // namespace

std::string Redact(std::string msg, const std::string& url) {
  if (!url.empty()) ReplaceAll(&msg, url, SafeUrl(url));
  for (const auto& secret : Secrets(url)) ReplaceAll(&msg, secret, "***");
  return msg;
}

bool ValidIdent(std::string_view name) {
  return !name.empty() && name.size() <= 63 && name.find('\0') == std::string_view::npos;
}

}  // namespace pg

namespace {

constexpr size_t kCopyChunk = 256 * 1024;
constexpr size_t kMaxParams = 65535;  // of one statement, the protocol's limit

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

// libpq's messages end in a newline and may span lines: one line.
std::string OneLine(const char* m) {
  std::string out;
  bool space = false;
  for (const char* p = m ? m : ""; *p != 0; ++p) {
    const auto c = static_cast<unsigned char>(*p);
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out.push_back(' ');
    space = false;
    out.push_back(static_cast<char>(c));
  }
  return out;
}

void IgnoreNotice(void*, const char*) {}

}  // namespace

const std::vector<OptionSpec>& PostgresSinkOptions() {
  static const std::vector<OptionSpec> specs = [] {
    std::vector<OptionSpec> v = {
        {"url", OptType::kString, "",
         "Connection URI, postgres://user:password@host:port/database?sslmode=...; use ${ENV} "
         "for the password (it is never logged)",
         true},
        {"schema", OptType::kString, "",
         "Schema of the table; unset: the connection's current schema (first on search_path)"},
        {"timeout", OptType::kDuration, "30s",
         "Limit on connecting and on each batch's statements; past it the connection is dropped "
         "and the batch retried",
         false, {}, 1000, 3600000},
    };
    for (auto& o : TableOptions()) v.push_back(o);
    return v;
  }();
  return specs;
}

std::unique_ptr<Sink> CreatePostgresSink(const SinkContext& ctx) {
  const Options& o = ctx.destination->sink;
  PostgresSink::Settings s;
  s.url = o.Str("url");
  s.schema = o.Str("schema");
  s.timeout_ms = o.Millis("timeout");
  if (DestinationTableSpec(ctx, &s.table, &s.error)) {
    s.merge = MergeSpecFor(ctx, &s.table, &s.merge_spec);
  }
  return std::make_unique<PostgresSink>(std::move(s));
}

namespace {

// What Open and forkd check refuse; false with *error naming the option.
bool CheckSettings(const std::string& url, const std::string& schema, const TableSpec& spec,
                   std::string* error) {
  if (!url.starts_with("postgres://") && !url.starts_with("postgresql://")) {
    *error = "url: must start with postgres:// or postgresql://";
    return false;
  }
  char* err = nullptr;
  PQconninfoOption* opts = PQconninfoParse(url.c_str(), &err);
  if (opts == nullptr) {
    // libpq may quote the url: redacted.
    *error = pg::Redact("url: " + OneLine(err), url);
    if (err != nullptr) PQfreemem(err);
    return false;
  }
  PQconninfoFree(opts);
  if (!pg::ValidIdent(spec.table)) {
    *error = "table: a postgres name is 1-63 bytes without NUL";
    return false;
  }
  if (!schema.empty() && !pg::ValidIdent(schema)) {
    *error = "schema: a postgres name is 1-63 bytes without NUL";
    return false;
  }
  for (const auto& c : spec.columns) {
    if (!pg::ValidIdent(c.name)) {
      *error = "columns." + c.name + ": a postgres name is 1-63 bytes";
      return false;
    }
  }
  return true;
}

}  // namespace

bool CheckPostgresOptions(const Options& o, std::string* error) {
  TableSpec spec;
  return ParseTableSpec(o, &spec, error) && CheckSettings(o.Str("url"), o.Str("schema"), spec, error);
}

PostgresSink::PostgresSink(Settings s) : s_(std::move(s)) {
  safe_url_ = pg::SafeUrl(s_.url);
  shown_ = (s_.schema.empty() ? std::string() : s_.schema + ".") + s_.table.table;
}

PostgresSink::~PostgresSink() {
  Disconnect();
  for (pg_conn* c : spare_conns_) PQfinish(c);
  for (Flight& f : flights_) {
    if (f.conn != nullptr) PQfinish(f.conn);
  }
}

Status PostgresSink::Open(const std::string&) {
  if (!s_.error.empty()) return Status::Fatal(s_.error);
  std::string error;
  if (!CheckSettings(s_.url, s_.schema, s_.table, &error)) return Status::Fatal(error);
  // The connection is made at the first Flush, and again after a failure.
  return Status::Ok();
}

void PostgresSink::Write(const Record& r) {
  Held h;
  h.id_at = bytes_.size();
  h.id_size = r.event_id.size();
  bytes_.append(r.event_id);
  h.payload_at = bytes_.size();
  h.payload_size = r.payload_size;
  bytes_.append(reinterpret_cast<const char*>(r.payload), r.payload_size);
  recs_.push_back(h);
}

void PostgresSink::Discard() {
  bytes_.clear();
  recs_.clear();
}

Status PostgresSink::Flush() {
  if (recs_.empty()) return Status::Ok();
  if (conn_ == nullptr && !spare_conns_.empty()) {
    conn_ = spare_conns_.back();
    spare_conns_.pop_back();
  }
  deadline_ms_ = NowMs() + s_.timeout_ms;
  last_state_.clear();
  table_fresh_ = false;
  Status st = Connect();
  if (st.ok()) st = EnsureTable();
  if (st.ok() && s_.table.upsert) {
    std::string update;
    for (size_t c = has_id_ ? 0 : 1; c < cols_.size(); ++c) {
      if (c == key_col_) continue;
      const std::string q = pg::QuoteIdent(cols_[c].name);
      update += update.empty() ? "UPDATE SET " : ", ";
      update += q + " = EXCLUDED." + q;
    }
    st = BuildRows(true);
    if (st.ok()) {
      st = SendInsert(" ON CONFLICT (" + pg::QuoteIdent(cols_[key_col_].name) + ") DO " +
                      (update.empty() ? std::string("NOTHING") : update));
    }
  } else if (st.ok()) {
    st = BuildRows(false);
    if (st.ok()) st = SendCopy();
    if (st.IsFatal() && last_state_ == "23505" && id_unique_ && table_ready_) {
      st = SendSkippingDuplicates();
    }
  }
  if (!st.ok()) {
    if (conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) Rollback();
    return st;
  }
  Discard();
  return Status::Ok();
}

Status PostgresSink::SendSkippingDuplicates() {
  // A duplicate key: records delivered before (a crash between the commit
  // and the cursor's, a batch after a failed flight), or another unique
  // constraint. Those already there are skipped; any other violation stays
  // fatal.
  if (conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) Rollback();
  Status st = BuildRows(true);
  if (st.ok()) st = SendInsert(" ON CONFLICT (\"_fork_id\") DO NOTHING");
  return st;
}

// ---------------------------------------------------------------------------
// Pipelining.

template <class F>
Status PostgresSink::On(pg_conn** c, F&& fn) {
  pg_conn* saved = conn_;
  conn_ = *c;
  Status st = fn();
  if (!st.ok() && conn_ != nullptr && PQtransactionStatus(conn_) != PQTRANS_IDLE) Rollback();
  *c = conn_;
  conn_ = saved;
  return st;
}

pg_conn* PostgresSink::TakeConn() {
  pg_conn* c = nullptr;
  if (!spare_conns_.empty()) {
    c = spare_conns_.back();
    spare_conns_.pop_back();
  } else {
    std::swap(c, conn_);
  }
  return c;
}

void PostgresSink::PutConn(pg_conn* c) {
  if (c == nullptr) return;
  if (PQstatus(c) == CONNECTION_OK && PQtransactionStatus(c) == PQTRANS_IDLE) {
    spare_conns_.push_back(c);
  } else {
    PQfinish(c);
  }
}

Status PostgresSink::Send(uint64_t ticket) {
  Flight f;
  if (!spare_flights_.empty()) {
    f = std::move(spare_flights_.back());
    spare_flights_.pop_back();
  }
  f.ticket = ticket;
  f.conn = TakeConn();
  Status st = On(&f.conn, [&] {
    deadline_ms_ = NowMs() + s_.timeout_ms;
    last_state_.clear();
    table_fresh_ = false;
    Status s = Connect();
    if (s.ok()) s = EnsureTable();
    if (s.ok()) s = BuildRows(false);
    if (!s.ok()) return s;
    if (id_unique_) return StartCopy();
    // Not idempotent: a batch sent again after a failed one would be
    // stored twice, so this one is delivered before the next is read.
    f.answered = true;
    return SendCopy();
  });
  if (!st.ok()) {
    PutConn(f.conn);
    f.conn = nullptr;
    f.answered = false;
    spare_flights_.push_back(std::move(f));
    return st;
  }
  // The batch stays with its flight, for a COPY refused for duplicates.
  f.bytes.clear();
  f.recs.clear();
  std::swap(f.bytes, bytes_);
  std::swap(f.recs, recs_);
  flights_.push_back(std::move(f));
  return Status::Ok();
}

Status PostgresSink::Await(uint64_t ticket) {
  if (flights_.empty() || flights_.front().ticket != ticket) {
    return Status::Fatal("postgres table " + shown_ + ": batch " + std::to_string(ticket) +
                         " awaited out of order");
  }
  Flight f = std::move(flights_.front());
  flights_.pop_front();
  Status st;
  if (!f.answered) {
    st = On(&f.conn, [&] {
      deadline_ms_ = NowMs() + s_.timeout_ms;
      last_state_.clear();
      Status s = Collect("COPY", nullptr);
      if (s.IsFatal() && last_state_ == "23505" && id_unique_ && table_ready_) {
        // The batch in place of the sink's own (empty, or the next being
        // written) while it goes again.
        std::swap(f.bytes, bytes_);
        std::swap(f.recs, recs_);
        s = SendSkippingDuplicates();
        std::swap(f.bytes, bytes_);
        std::swap(f.recs, recs_);
      }
      return s;
    });
  }
  PutConn(f.conn);
  f.conn = nullptr;
  f.answered = false;
  spare_flights_.push_back(std::move(f));
  return st;
}

// ---------------------------------------------------------------------------
// The connection.

Status PostgresSink::Connect() {
  if (conn_ != nullptr && PQstatus(conn_) == CONNECTION_OK) return Status::Ok();
  Disconnect();
  // libpq counts connect_timeout in whole seconds, at least 2. Keywords
  // before dbname may be overridden by the url; client_encoding may not.
  const std::string connect_timeout = std::to_string(std::max<int64_t>(2, (s_.timeout_ms + 999) / 1000));
  const char* keys[] = {"connect_timeout", "application_name", "dbname", "client_encoding", nullptr};
  const char* values[] = {connect_timeout.c_str(), "forkd", s_.url.c_str(), "UTF8", nullptr};
  conn_ = PQconnectdbParams(keys, values, 1);
  if (conn_ == nullptr) return Status::Retry("postgres " + safe_url_ + ": out of memory");
  if (PQstatus(conn_) != CONNECTION_OK) {
    const std::string m = OneLine(PQerrorMessage(conn_));
    Disconnect();
    return Status::Retry(pg::Redact("postgres " + safe_url_ + ": cannot connect: " + m, s_.url));
  }
  PQsetNoticeProcessor(conn_, &IgnoreNotice, nullptr);
  if (PQsetnonblocking(conn_, 1) != 0) return Failed("cannot make the connection non-blocking");
  table_ready_ = false;  // read it again: it may have changed while we were away
  return Status::Ok();
}

void PostgresSink::Disconnect() {
  if (conn_ != nullptr) PQfinish(conn_);
  conn_ = nullptr;
  table_ready_ = false;
  id_unique_ = false;
}

Status PostgresSink::Failed(const std::string& what) {
  std::string m = "postgres table " + shown_ + ": " + what;
  if (conn_ != nullptr) {
    const std::string e = OneLine(PQerrorMessage(conn_));
    if (!e.empty()) m += ": " + e;
  }
  Disconnect();
  return Status::Retry(pg::Redact(std::move(m), s_.url));
}

Status PostgresSink::ServerError(pg_result* r, const std::string& what) {
  const char* state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
  const char* primary = PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY);
  std::string m = "postgres table " + shown_ + ": " + what + " failed: " +
                  (primary != nullptr ? std::string(primary) : OneLine(PQresultErrorMessage(r)));
  if (state != nullptr) m += std::string(" (SQLSTATE ") + state + ")";
  last_state_ = state != nullptr ? state : "";
  m = pg::Redact(std::move(m), s_.url);
  if (PQstatus(conn_) != CONNECTION_OK || state == nullptr) {
    Disconnect();
    return Status::Retry(std::move(m));
  }
  const std::string_view code(state);
  if (code == "42P01" || code == "42703") {
    // The table or a column is gone: dropped or altered since it was read.
    // Read it again (create it if missing) and retry; refuse the records
    // only if the table as just read still does not take them.
    const bool fresh = table_fresh_;
    table_ready_ = false;
    if (!fresh) return Status::Retry(m + "; reading the table again");
  }
  if (pg::SqlStateRetries(code)) return Status::Retry(std::move(m));
  return Status::Fatal(std::move(m));
}

void PostgresSink::Rollback() {
  deadline_ms_ = NowMs() + s_.timeout_ms;
  if (!Exec("ROLLBACK", "ROLLBACK", {}).ok()) Disconnect();
}

Status PostgresSink::WaitSocket(bool write) {
  while (true) {
    const int fd = PQsocket(conn_);
    if (fd < 0) return Failed("connection lost");
    const int64_t left = deadline_ms_ - NowMs();
    if (left <= 0) {
      Disconnect();
      return Status::Retry("postgres table " + shown_ + ": no answer within " +
                           std::to_string(s_.timeout_ms) + " ms (timeout); connection dropped");
    }
    pollfd p{fd, static_cast<short>(POLLIN | (write ? POLLOUT : 0)), 0};
    const int rc = ::poll(&p, 1, static_cast<int>(std::min<int64_t>(left, 1000)));
    if (rc < 0 && errno != EINTR) return Failed(std::string("poll: ") + std::strerror(errno));
    if (rc <= 0) continue;
    if ((p.revents & (POLLIN | POLLERR | POLLHUP)) != 0 && PQconsumeInput(conn_) == 0) {
      return Failed("connection lost");
    }
    return Status::Ok();
  }
}

Status PostgresSink::FlushOutput() {
  while (true) {
    const int rc = PQflush(conn_);
    if (rc == 0) return Status::Ok();
    if (rc < 0) return Failed("send failed");
    Status st = WaitSocket(true);
    if (!st.ok()) return st;
  }
}

Status PostgresSink::Collect(const std::string& what, pg_result** out, bool copy_in) {
  PGresult* keep = nullptr;
  PGresult* error = nullptr;
  auto clear = [&] {
    if (keep != nullptr) PQclear(keep);
    if (error != nullptr) PQclear(error);
  };
  while (true) {
    while (PQisBusy(conn_) != 0) {
      Status st = WaitSocket(false);
      if (!st.ok()) {
        clear();
        return st;
      }
    }
    PGresult* r = PQgetResult(conn_);
    if (r == nullptr) break;
    const ExecStatusType status = PQresultStatus(r);
    if (status == PGRES_COPY_IN && copy_in && error == nullptr) {
      clear();
      *out = r;
      return Status::Ok();
    }
    if (status == PGRES_FATAL_ERROR || status == PGRES_BAD_RESPONSE || status == PGRES_COPY_IN ||
        status == PGRES_COPY_OUT || status == PGRES_NONFATAL_ERROR) {
      if (error == nullptr) {
        error = r;
      } else {
        PQclear(r);
      }
      if (status == PGRES_COPY_IN) PQputCopyEnd(conn_, "unexpected");
      if (PQstatus(conn_) != CONNECTION_OK) break;
      continue;
    }
    if (keep != nullptr) PQclear(keep);
    keep = r;
  }
  if (error != nullptr) {
    Status st = ServerError(error, what);
    clear();
    return st;
  }
  if (copy_in) {
    clear();
    return Failed("COPY did not start");
  }
  if (out != nullptr) {
    *out = keep;
  } else if (keep != nullptr) {
    PQclear(keep);
  }
  return Status::Ok();
}

Status PostgresSink::Exec(const std::string& what, const std::string& sql,
                          const std::vector<const char*>& params, pg_result** out) {
  if (conn_ == nullptr) return Status::Retry("postgres table " + shown_ + ": not connected");
  if (PQsendQueryParams(conn_, sql.c_str(), static_cast<int>(params.size()), nullptr,
                        params.data(), nullptr, nullptr, 0) == 0) {
    return Failed(what + " could not be sent");
  }
  Status st = FlushOutput();
  if (!st.ok()) return st;
  PGresult* r = nullptr;
  st = Collect(what, &r);
  if (!st.ok()) return st;
  if (out != nullptr) {
    *out = r;
  } else if (r != nullptr) {
    PQclear(r);
  }
  return Status::Ok();
}

// ---------------------------------------------------------------------------
// The batch.

bool PostgresSink::Cell(size_t col, std::string_view id, std::string* out) const {
  if (col == 0) {
    out->assign(id);
    return true;
  }
  if (has_extra_ && col == cols_.size() - 1) {
    out->assign(mapper_.extra_json());
    return !out->empty();
  }
  const uint8_t* v = mapper_.value(col);
  if (v != nullptr && cols_[col].type == ColType::kTimestamp) {
    // A number in a timestamp column: milliseconds since the epoch (what
    // Date.now() gives).
    wire::Reader rd(v, size_t{1} << 30);  // validated bytes; only the header is read
    const wire::Value x = rd.Peek();
    double ms = 0;
    bool number = true;
    if (x.kind == wire::Kind::kInt) {
      ms = static_cast<double>(x.i);
    } else if (x.kind == wire::Kind::kUint) {
      ms = static_cast<double>(x.u);
    } else if (x.kind == wire::Kind::kFloat && std::isfinite(x.f)) {
      ms = x.f;
    } else {
      number = false;
    }
    if (number && std::fabs(ms) < 1e17) {
      const double secs = std::floor(ms / 1000);
      const auto nanos =
          static_cast<uint32_t>(std::min<long long>(std::llround((ms - secs * 1000) * 1e6), 999999999));
      out->clear();
      AppendIsoTime(static_cast<int64_t>(secs), nanos, out);
      return true;
    }
  }
  return CellText(v, cols_[col].type, out);
}

Status PostgresSink::BuildRows(bool params) {
  copy_.clear();
  cells_.clear();
  cell_at_.clear();
  rows_ = 0;
  std::string err, cell;
  auto refuse = [&](std::string_view id, const std::string& why) {
    return Status::Fatal("postgres table " + shown_ + ": record " + std::string(id) + ": " + why);
  };
  auto map = [&](const Held& h) {
    if (mapper_.Map(Payload(h), h.payload_size, &err)) return true;
    if (!has_extra_ && s_.table.extra) {
      const size_t at = err.find("(and extra: false)");
      if (at != std::string::npos) err.replace(at, 18, "(and it has no extra column)");
    }
    return false;
  };
  const size_t first_col = has_id_ ? 0 : 1;

  // Upsert: of the records with the same key, the last.
  std::vector<size_t> rows;
  rows.reserve(recs_.size());
  if (!params || !s_.table.upsert) {
    for (size_t i = 0; i < recs_.size(); ++i) rows.push_back(i);
  } else {
    std::vector<std::string> keys(recs_.size());
    std::vector<bool> has_key(recs_.size(), false);
    std::unordered_map<std::string_view, size_t> last;
    for (size_t i = 0; i < recs_.size(); ++i) {
      if (key_col_ == 0) {
        keys[i].assign(Id(recs_[i]));
        has_key[i] = true;
      } else {
        if (!map(recs_[i])) return refuse(Id(recs_[i]), err);
        has_key[i] = Cell(key_col_, Id(recs_[i]), &keys[i]);
      }
    }
    for (size_t i = 0; i < recs_.size(); ++i) {
      if (has_key[i]) last[keys[i]] = i;
    }
    for (size_t i = 0; i < recs_.size(); ++i) {
      if (!has_key[i] || last[keys[i]] == i) rows.push_back(i);
    }
  }

  for (size_t i : rows) {
    const Held& h = recs_[i];
    const std::string_view id = Id(h);
    if (!map(h)) return refuse(id, err);
    for (size_t c = first_col; c < cols_.size(); ++c) {
      const bool present = Cell(c, id, &cell);
      if (present && cell.find('\0') != std::string::npos) {
        return refuse(id, (c == 0 ? std::string("its id") : "field " + cols_[c].name) +
                              " holds a NUL character, which postgres text cannot store");
      }
      if (params) {
        if (present) {
          cell_at_.push_back(cells_.size());
          cells_.append(cell);
          cells_.push_back('\0');
        } else {
          cell_at_.push_back(SIZE_MAX);
        }
      } else {
        if (c > first_col) copy_.push_back('\t');
        if (present) {
          pg::AppendCopyText(cell, &copy_);
        } else {
          copy_.append("\\N");
        }
      }
    }
    if (!params) copy_.push_back('\n');
    ++rows_;
  }
  return Status::Ok();
}

Status PostgresSink::SendCopy() {
  Status st = StartCopy();
  if (!st.ok()) return st;
  return Collect("COPY", nullptr);
}

Status PostgresSink::StartCopy() {
  // One COPY is one statement, hence one transaction: the batch lands whole
  // or not at all.
  const std::string sql = "COPY " + qualified_ + " " + column_list_ + " FROM STDIN";
  if (PQsendQuery(conn_, sql.c_str()) == 0) return Failed("COPY could not be sent");
  Status st = FlushOutput();
  PGresult* r = nullptr;
  if (st.ok()) st = Collect("COPY", &r, true);
  if (!st.ok()) return st;
  PQclear(r);
  for (size_t at = 0; at < copy_.size();) {
    const size_t n = std::min(kCopyChunk, copy_.size() - at);
    const int rc = PQputCopyData(conn_, copy_.data() + at, static_cast<int>(n));
    if (rc < 0) return Failed("COPY data could not be sent");
    if (rc == 0) {
      st = WaitSocket(true);
      if (!st.ok()) return st;
      continue;
    }
    at += n;
    st = FlushOutput();
    if (!st.ok()) return st;
  }
  while (true) {
    const int rc = PQputCopyEnd(conn_, nullptr);
    if (rc < 0) return Failed("COPY could not be ended");
    if (rc == 1) break;
    st = WaitSocket(true);
    if (!st.ok()) return st;
  }
  return FlushOutput();
}

Status PostgresSink::SendInsert(const std::string& conflict) {
  const size_t first_col = has_id_ ? 0 : 1;
  const size_t width = cols_.size() - first_col;
  const size_t per_statement = std::max<size_t>(1, std::min<size_t>(1000, kMaxParams / width));

  const bool several = rows_ > per_statement;
  Status st;
  if (several) {
    st = Exec("BEGIN", "BEGIN", {});
    if (!st.ok()) return st;
  }
  std::string sql;
  size_t sql_rows = 0;
  std::vector<const char*> params;
  for (size_t row = 0; row < rows_; row += per_statement) {
    const size_t n = std::min(per_statement, rows_ - row);
    if (n != sql_rows) {
      sql = "INSERT INTO " + qualified_ + " " + column_list_ + " VALUES ";
      size_t p = 1;
      for (size_t i = 0; i < n; ++i) {
        sql += i == 0 ? "(" : ", (";
        for (size_t c = 0; c < width; ++c) {
          if (c > 0) sql += ", ";
          sql += '$';
          sql += std::to_string(p++);
        }
        sql += ")";
      }
      sql += conflict;
      sql_rows = n;
    }
    params.clear();
    for (size_t k = row * width; k < (row + n) * width; ++k) {
      params.push_back(cell_at_[k] == SIZE_MAX ? nullptr : cells_.data() + cell_at_[k]);
    }
    st = Exec("INSERT", sql, params);
    if (!st.ok()) return st;
  }
  if (several) return Exec("COMMIT", "COMMIT", {});
  return Status::Ok();
}

}  // namespace forkd::sinks
