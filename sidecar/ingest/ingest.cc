#include "ingest/ingest.h"

#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>

#include "core/clock.h"
#include "ingest/ingest_internal.h"
#include "ingest/zap.h"
#include "transforms/aggregate.h"
#include "wire/hex.h"

namespace forkd::ingest {

using internal::AppendRange;
using internal::SplitPair;

namespace {

constexpr int kMaxMessagesPerRound = 4096;
constexpr size_t kCommitBytes = 4u << 20;  // commit without waiting past this
// ZeroMQ holds, per connection, up to RCVHWM messages plus the one it is
// reading: the receive HWM is chosen so that is about this many bytes of
// max_frame messages (at least two messages, whatever the frame limit).
constexpr int64_t kInboundBytesPerPeer = 4ll << 20;
// A route frame whose entries are refused for this many separate reasons
// (runs of neighbouring seqs with the same nack each count once) is refused
// from there on unread: its nacks stay few, whatever the frame claims.
constexpr size_t kMaxRefusalsPerFrame = 1024;
// Messages queued to one client that does not read before ZeroMQ drops
// more: a bound on what a peer that never reads costs, and room for every
// answer to a few frames (each at most kMaxRefusalsPerFrame + 1 nacks and an
// ack), so that a client that reads is never dropped one.
constexpr int kSendHwm = 4 * kMaxRefusalsPerFrame;

}  // namespace

Ingest::Ingest(std::shared_ptr<const Config> config, log::Log* log,
               std::function<uint64_t(std::string_view)> delivered_next_lsn,
               pipeline::Outcomes* outcomes)
    : config_(std::move(config)),
      log_(log),
      delivered_next_lsn_(std::move(delivered_next_lsn)),
      outcomes_(outcomes) {
  limits_ = config_->limits;
  commit_bytes_ = std::min<size_t>(kCommitBytes, static_cast<size_t>(config_->max_pending) / 2);
  std::vector<std::string> names;
  for (const auto& d : config_->destinations) names.push_back(d.name);
  router_ = std::make_unique<pipeline::Router>(config_->routes, names, config_->unmatched);
  IndexWatches();
}

void Ingest::SetConfig(std::shared_ptr<const Config> config) {
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    next_config_ = std::move(config);
  }
  config_pending_.store(true);
  const uint64_t one = 1;
  if (wake_fd_ >= 0) {
    [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof(one));
  }
}

Status Ingest::Inject(std::vector<std::string> events, int64_t timeout_ms) {
  if (events.empty()) return Status::Ok();
  auto inj = std::make_unique<Injection>();
  inj->events = std::move(events);
  std::future<Status> done = inj->done.get_future();
  {
    std::lock_guard<std::mutex> lock(inject_mu_);
    if (stopping_.load()) return Status::Retry("forkd is stopping");
    inject_queue_.push_back(std::move(inj));
  }
  inject_pending_.store(true);
  const uint64_t one = 1;
  if (wake_fd_ >= 0) {
    [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof(one));
  }
  if (done.wait_for(std::chrono::milliseconds(timeout_ms)) != std::future_status::ready) {
    return Status::Retry("the log did not commit the events within " +
                         std::to_string(timeout_ms) + " ms");
  }
  return done.get();
}

void Ingest::TakeInjections() {
  inject_pending_.store(false);
  std::vector<std::unique_ptr<Injection>> queue;
  {
    std::lock_guard<std::mutex> lock(inject_mu_);
    queue.swap(inject_queue_);
  }
  // Injected events have no client: a zero client id, and their own seqs.
  static const uint8_t kNoClient[wire::kClientIdSize] = {};
  const int64_t now_us = WallMicros();
  for (auto& inj : queue) {
    // Readers trust what this process appended (log.h, TailReader::Next),
    // so injected events are checked here as clients' are: all or none.
    std::string why;
    for (size_t i = 0; i < inj->events.size() && why.empty(); ++i) {
      const std::string& ev = inj->events[i];
      if (!wire::CheckStoredEvent(reinterpret_cast<const uint8_t*>(ev.data()), ev.size(), &why)) {
        why = "injected event " + std::to_string(i) + ": " + why;
      }
    }
    if (!why.empty()) {
      spdlog::error("{}; none of its {} events appended", why, inj->events.size());
      inj->done.set_value(Status::InvalidArgument(why));
      continue;
    }
    if (pending_acks_.empty() && log_->pending_entries() == 0) pending_since_us_ = MonoMicros();
    for (const auto& ev : inj->events) {
      const uint64_t lsn = log_->Append(now_us, kNoClient, ++inject_seq_,
                                        reinterpret_cast<const uint8_t*>(ev.data()), ev.size());
      if (inj->first_lsn == 0) inj->first_lsn = lsn;
      inj->last_lsn = lsn;
    }
    stats_.events.fetch_add(inj->events.size(), std::memory_order_relaxed);
    injected_.push_back(std::move(inj));
  }
}

void Ingest::SetBlocked(std::vector<std::string> names) {
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    if (names == blocked_names_) return;
    blocked_names_ = std::move(names);
  }
  blocked_pending_.store(true);
}

void Ingest::ApplyBlocked() {
  blocked_pending_.store(false);
  std::lock_guard<std::mutex> lock(config_mu_);
  blocked_mask_ = 0;
  for (const auto& name : blocked_names_) {
    for (size_t i = 0; i < config_->destinations.size() && i < 64; ++i) {
      if (config_->destinations[i].name == name) blocked_mask_ |= 1ull << i;
    }
  }
  if (!blocked_names_.empty()) {
    spdlog::warn("backlog quota reached: refusing new events for {} with FORK_BACKPRESSURE",
                 fmt::join(blocked_names_, ", "));
  } else {
    spdlog::info("backlog quotas: accepting events for every destination again");
  }
}

std::map<std::string, uint64_t> Ingest::DestinationCounts() const {
  std::lock_guard<std::mutex> lock(config_mu_);
  std::map<std::string, uint64_t> out;
  for (size_t i = 0; i < config_->destinations.size() && i < 64; ++i) {
    out[config_->destinations[i].name] = routed_to_[i].load(std::memory_order_relaxed);
  }
  return out;
}

std::vector<Ingest::RouteCount> Ingest::RouteCounts() const {
  std::lock_guard<std::mutex> lock(config_mu_);
  std::vector<RouteCount> out;
  for (size_t i = 0; i < router_->size(); ++i) {
    out.push_back(RouteCount{i, router_->route(i).shadow, router_->stats(i).matched.load()});
  }
  return out;
}

void Ingest::ApplyConfig() {
  std::shared_ptr<const Config> next;
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    next = std::move(next_config_);
  }
  config_pending_.store(false);
  if (!next) return;
  // Waiters for 'delivered' name destinations by their index in the config:
  // carry them over by name. A destination that is gone no longer holds
  // anyone back.
  std::vector<int> remap(config_->destinations.size(), -1);
  for (size_t i = 0; i < config_->destinations.size(); ++i) {
    for (size_t j = 0; j < next->destinations.size() && j < 64; ++j) {
      if (next->destinations[j].name == config_->destinations[i].name) remap[i] = static_cast<int>(j);
    }
  }
  auto map_mask = [&](uint64_t m) {
    uint64_t out = 0;
    for (size_t i = 0; i < remap.size() && i < 64; ++i) {
      if ((m & (1ull << i)) && remap[i] >= 0) out |= 1ull << remap[i];
    }
    return out;
  };
  // The watches of a destination that is gone will not be taken: forget them.
  auto unwatch_removed = [&](uint64_t mask, uint64_t lsn) {
    for (size_t i = 0; i < remap.size() && i < watches_.size(); ++i) {
      if ((mask & (1ull << i)) && remap[i] < 0) watches_[i]->Unwatch(lsn);
    }
  };
  for (const auto& [mask, q] : waiters_) {
    for (const Waiter& w : q) unwatch_removed(mask, w.lsn);
  }
  for (const auto& a : pending_acks_) unwatch_removed(a.dest_mask, a.lsn);
  for (const auto& a : in_flight_acks_) unwatch_removed(a.dest_mask, a.lsn);
  std::map<uint64_t, std::deque<Waiter>> waiters;
  for (auto& [mask, q] : waiters_) {
    auto& dst = waiters[map_mask(mask)];
    for (auto& w : q) dst.push_back(w);
  }
  waiters_.swap(waiters);
  uint64_t counts[64] = {};
  for (size_t i = 0; i < remap.size() && i < 64; ++i) {
    if (remap[i] >= 0) counts[remap[i]] = routed_to_[i].load(std::memory_order_relaxed);
  }
  for (size_t i = 0; i < 64; ++i) routed_to_[i].store(counts[i], std::memory_order_relaxed);
  for (auto& a : pending_acks_) a.dest_mask = a.dest_mask ? map_mask(a.dest_mask) : 0;
  for (auto& a : in_flight_acks_) a.dest_mask = a.dest_mask ? map_mask(a.dest_mask) : 0;
  for (Client& c : clients_) {
    for (auto& [seq, m] : c.routed) m = map_mask(m);
  }
  std::vector<std::string> names;
  for (const auto& d : next->destinations) names.push_back(d.name);
  auto router = std::make_unique<pipeline::Router>(next->routes, names, next->unmatched);
  {
    std::lock_guard<std::mutex> lock(config_mu_);
    retired_configs_.push_back(config_);
    config_ = std::move(next);
    router_ = std::move(router);
  }
  IndexWatches();
  spdlog::info("ingest: now routing to {} destinations with {} routes",
               config_->destinations.size(), config_->routes.size());
}

Ingest::~Ingest() {
  if (socket_ != nullptr) zmq_close(socket_);
  if (zap_) zap_->Stop();
  if (ctx_ != nullptr) zmq_ctx_term(ctx_);
  if (wake_fd_ >= 0) ::close(wake_fd_);
}

Status Ingest::Bind() {
  wake_fd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return ErrnoStatus("eventfd", "", errno);
  ctx_ = zmq_ctx_new();
  socket_ = zmq_socket(ctx_, ZMQ_ROUTER);
  if (socket_ == nullptr) return Status::IoError(std::string("zmq socket: ") + zmq_strerror(errno));
  const int one = 1;
  const int64_t max_msg = config_->max_frame;
  const int rcvhwm = static_cast<int>(std::clamp<int64_t>(kInboundBytesPerPeer / max_msg, 2, 1000));
  const int linger = 1000;
  // No ROUTER handover: while a client is connected, ZeroMQ never reads a
  // second connection with the same routing id, so no other peer can take
  // over its id, its replies or its connection. A client reconnecting while
  // forkd still holds its old, dead connection (a network blip) gets in once
  // the heartbeat below has dropped that one: its hello goes unanswered
  // until then, and the addon reconnects.
  // Only over a network: an ipc peer that goes away closes its socket, and
  // libzmq 4.3.4 can abort (!_io_error in stream_engine_base) when a
  // heartbeat times out on a connection whose input forkd has paused at
  // limits.max_pending.
  if (config_->listen.rfind("ipc://", 0) != 0) {
    const int heartbeat_ivl = 1000, heartbeat_timeout = 3000;
    zmq_setsockopt(socket_, ZMQ_HEARTBEAT_IVL, &heartbeat_ivl, sizeof(heartbeat_ivl));
    zmq_setsockopt(socket_, ZMQ_HEARTBEAT_TIMEOUT, &heartbeat_timeout, sizeof(heartbeat_timeout));
  }
  // A message over the limit disconnects its sender before it is buffered.
  zmq_setsockopt(socket_, ZMQ_MAXMSGSIZE, &max_msg, sizeof(max_msg));
  zmq_setsockopt(socket_, ZMQ_RCVHWM, &rcvhwm, sizeof(rcvhwm));
  zmq_setsockopt(socket_, ZMQ_SNDHWM, &kSendHwm, sizeof(kSendHwm));
  zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof(linger));
  // Every handshake goes through the ZAP handler (with a domain set, also
  // under the NULL mechanism), which numbers the connections.
  zap_ = std::make_unique<ZapHandler>(config_->curve.clients, &stats_.refused_connections);
  if (Status s = zap_->Start(ctx_); !s.ok()) return s;
  zmq_setsockopt(socket_, ZMQ_ZAP_DOMAIN, "fork", 4);
  const CurveConfig& curve = config_->curve;
  if (curve.enabled()) {
    zmq_setsockopt(socket_, ZMQ_CURVE_SERVER, &one, sizeof(one));
    if (zmq_setsockopt(socket_, ZMQ_CURVE_SECRETKEY, curve.secret_key.data(),
                       curve.secret_key.size()) != 0) {
      return Status::InvalidArgument(std::string("curve: the secret key is refused: ") +
                                     zmq_strerror(errno));
    }
  }
  if (zmq_bind(socket_, config_->listen.c_str()) != 0) {
    return Status::IoError("cannot listen on " + config_->listen + ": " + zmq_strerror(errno));
  }
  // In-process peers skip ZAP and CURVE: they are forkd's own HTTP ingest
  // and sources. Always bound, so a reload may add either.
  if (zmq_bind(socket_, kInprocEndpoint) != 0) {
    return Status::IoError(std::string("cannot bind ") + kInprocEndpoint + ": " +
                           zmq_strerror(errno));
  }
  if (curve.enabled()) {
    spdlog::info("listening on {} with CURVE: public key {} (secret from {}); {}", config_->listen,
                 curve.public_key, curve.secret_source,
                 curve.clients.empty()
                     ? std::string("any client that knows the public key may connect")
                     : std::to_string(curve.clients.size()) + " client keys allowed (curve.clients)");
  } else if (config_->listen.rfind("ipc://", 0) != 0) {
    spdlog::warn("listening on {} WITHOUT CURVE (insecure_tcp: true): anyone who can reach it "
                 "can send events, and everything travels in clear; see docs/security.md",
                 config_->listen);
  } else {
    spdlog::info("listening on {}", config_->listen);
  }
  return Status::Ok();
}

void Ingest::Stop() {
  stopping_.store(true);
  const uint64_t one = 1;
  [[maybe_unused]] ssize_t w = ::write(wake_fd_, &one, sizeof(one));
}

void Ingest::HandleHello(uint32_t client, const Peer& peer, const uint8_t* data, size_t size) {
  wire::Hello hello;
  std::string error;
  if (!wire::DecodeHello(data, size, &hello, &error)) {
    stats_.bad_frames.fetch_add(1, std::memory_order_relaxed);
    Nack(client, 0, 0, wire::kCodeRejected, error);
    return;
  }
  Client& c = clients_[client];
  const std::string id = wire::Hex(hello.client_id, wire::kClientIdSize);
  const std::string session =
      hello.has_session ? std::string(reinterpret_cast<const char*>(hello.session),
                                      wire::kClientIdSize)
                        : std::string();
  // The routing id is what forkd keys a client's sequence numbers by, and
  // any peer may connect with any routing id while the id's client is away:
  // the hello must name that id, and match what the id was bound to by the
  // first hello that claimed it. A client's own reconnect always matches.
  std::string refusal;
  if (c.identity.size() != wire::kClientIdSize ||
      std::memcmp(c.identity.data(), hello.client_id, wire::kClientIdSize) != 0) {
    refusal = "hello: client id " + id + " is not this connection's routing id " +
              wire::Hex(reinterpret_cast<const uint8_t*>(c.identity.data()), c.identity.size()) +
              " (a client sets its id as the DEALER's routing id)";
  } else if (c.bound && c.key != peer.key) {
    refusal = "client id " + id + " belongs to another CURVE key (" +
              (c.key.empty() ? std::string("none") : c.key) +
              "); forkd refuses it to other keys for as long as it remembers the client";
  } else if (c.bound && c.session != session) {
    refusal = "client id " + id +
              " is in use by another client (a different session); a client id is never shared";
  }
  if (!refusal.empty()) {
    stats_.refused_hellos.fetch_add(1, std::memory_order_relaxed);
    spdlog::warn("refused a hello on connection {}{}: {}", peer.connection,
                 peer.key.empty() ? std::string() : " (CURVE key " + std::string(peer.key) + ")",
                 refusal);
    Nack(client, 0, 0, wire::kCodeRejected, refusal);
    return;
  }
  c.bound = true;
  c.connection = peer.connection;
  c.key.assign(peer.key);
  c.session = session;
  spdlog::info("client {} connected ({}{})", id,
               hello.agent.empty() ? "unknown agent" : hello.agent,
               peer.key.empty() ? std::string() : ", CURVE key " + std::string(peer.key));
  clients_[client].outcomes = hello.outcomes && outcomes_ != nullptr;
  clients_[client].hello = true;
  wire::Welcome w;
  w.outcomes = outcomes_ != nullptr;
  w.server = "forkd/" FORKD_VERSION;
  w.max_frame = static_cast<uint32_t>(config_->max_frame);
  w.max_event = static_cast<uint32_t>(config_->max_event);
  for (const auto& d : config_->destinations) w.destinations.push_back(d.name);
  out_.clear();
  wire::EncodeWelcome(w, &out_);
  Send(clients_[client].identity, out_);
}

const char* Ingest::Resolve(const wire::EventView& ev, const wire::RouteEntry& e, uint32_t client,
                            uint64_t* mask, bool* rewritten, std::string* error) {
  const auto& dests = config_->destinations;
  named_.clear();
  if (ev.has_dests) {
    wire::Reader rd(ev.dests, ev.dests_size);
    rd.Next();
    for (uint32_t i = 0; i < ev.dest_count; ++i) {
      const std::string_view name = rd.Next().str();
      size_t j = 0;
      while (j < dests.size() && dests[j].name != name) ++j;
      if (j == dests.size()) {
        std::string known;
        for (const auto& d : dests) known += (known.empty() ? "" : ", ") + d.name;
        *error = "unknown destination '" + std::string(name) + "' (configured: " + known + ")";
        return wire::kCodeUnknownDestination;
      }
      if (std::find(named_.begin(), named_.end(), j) == named_.end()) {
        named_.push_back(static_cast<uint32_t>(j));
      }
    }
  }
  decision_.targets.clear();
  decision_.routed = false;
  if (named_.empty() || router_->has_also()) {
    route_doc_.Load(ev.payload, ev.payload_size);
    route_scratch_.Reset();
    char id[wire::kMaxEventIdSize];
    std::string_view fallback = ev.key;
    if (!ev.has_key) {
      fallback = std::string_view(
          id, wire::FormatEventIdTo(reinterpret_cast<const uint8_t*>(clients_[client].identity.data()),
                                    e.seq, id));
    }
    if (!router_->Route(route_doc_, named_, fallback, &route_scratch_, &decision_)) {
      *error = router_->empty() ? "no destination given, and the config has no routes"
                                : "no destination given and no route matches";
      return wire::kCodeUnknownDestination;
    }
  } else {
    for (uint32_t d : named_) decision_.targets.push_back({d, {}});
  }
  *mask = 0;
  for (const auto& t : decision_.targets) {
    if (t.dest < 64) *mask |= 1ull << t.dest;
  }
  if (const uint64_t full = *mask & blocked_mask_) {
    *error = "backlog quota reached for destination";
    for (size_t i = 0; i < 64 && i < dests.size(); ++i) {
      if (full & (1ull << i)) *error += " '" + dests[i].name + "'";
    }
    *error += ": it holds too much undelivered log (see backlog in its config); retry later";
    return wire::kCodeBackpressure;
  }
  targets_.clear();
  for (const auto& t : decision_.targets) targets_.push_back(t.dest);
  if (const char* code = pipeline::CheckCallOptions(*config_, ev.options, ev.options_size, targets_, error)) {
    return code;
  }
  *rewritten = false;
  if (!decision_.routed) return nullptr;
  StoreFor(ev, e, *mask);
  *rewritten = true;
  return nullptr;
}

void Ingest::StoreFor(const wire::EventView& ev, const wire::RouteEntry& e, uint64_t keep) {
  const auto& dests = config_->destinations;
  event_buf_.clear();
  wire::Writer w(&event_buf_);
  w.ArrayHeader(4);
  // A leading nil says the routes chose the set (the caller named none), so
  // a destination added later with `from: earliest` can ask today's routes.
  const bool by_routes = named_.empty();
  uint32_t kept = 0;
  for (const auto& t : decision_.targets) kept += (keep >> t.dest) & 1;
  w.ArrayHeader(kept + (by_routes ? 1 : 0));
  if (by_routes) w.Nil();
  for (const auto& t : decision_.targets) {
    if (((keep >> t.dest) & 1) == 0) continue;
    if (t.transforms.empty()) {
      w.Str(dests[t.dest].name);
    } else {
      w.ArrayHeader(static_cast<uint32_t>(1 + t.transforms.size()));
      w.Str(dests[t.dest].name);
      for (const std::string* name : t.transforms) w.Str(*name);
    }
  }
  const uint8_t* rest = ev.dests + ev.dests_size;
  w.Raw(rest, static_cast<size_t>(e.event + e.size - rest));
}

bool Ingest::TakesRoutes(uint32_t ci, const Peer& peer) {
  Client& c = clients_[ci];
  if (c.bound && peer.connection == c.connection) return true;
  // Not answered: a nack goes to the routing id, not to a connection, and
  // must never reach the bound client about frames it did not send. Frames
  // of a connection the client has replaced are expected (it resends them
  // after its new welcome); others are logged once per connection.
  stats_.refused_frames.fetch_add(1, std::memory_order_relaxed);
  if ((!c.bound || peer.connection > c.connection) && c.dropped_connection != peer.connection) {
    c.dropped_connection = peer.connection;
    spdlog::warn("dropping route frames of connection {} for client {}: it has no accepted hello",
                 peer.connection,
                 wire::Hex(reinterpret_cast<const uint8_t*>(c.identity.data()), c.identity.size()));
  }
  return false;
}

void Ingest::HandleRoute(uint32_t ci, const Peer& peer, const uint8_t* data, size_t size) {
  std::string error;
  if (clients_[ci].identity.size() != wire::kClientIdSize) {
    // No client can have this id: nobody else gets the answer.
    Nack(ci, 0, 0, wire::kCodeRejected,
         "client id must be 16 bytes: set the DEALER routing id and send hello first");
    return;
  }
  if (!TakesRoutes(ci, peer)) return;
  wire::RouteReader reader;
  if (!reader.Open(data, size, &error)) {
    stats_.bad_frames.fetch_add(1, std::memory_order_relaxed);
    uint64_t first = 0, last = 0;
    if (size >= wire::kRouteHeaderSize) {
      first = wire::GetU64(data + 2);
      const uint32_t count = wire::GetU32(data + 10);
      last = count > 0 && first + count - 1 >= first ? first + count - 1 : first;
    }
    Nack(ci, first, last, wire::kCodeRejected, "malformed route frame: " + error);
    return;
  }
  stats_.frames.fetch_add(1, std::memory_order_relaxed);
  const int64_t now_us = WallMicros();
  const auto* client_id = reinterpret_cast<const uint8_t*>(clients_[ci].identity.data());
  refusals_in_frame_ = 0;
  wire::RouteEntry e;
  while (reader.Next(&e)) {
    Client& c = clients_[ci];
    if (c.taken.Contains(e.seq)) {
      // A resend after a lost ack. Ack it again if it is already durable;
      // otherwise the ack of its batch is on its way.
      stats_.duplicates.fetch_add(1, std::memory_order_relaxed);
      if (c.durable.Contains(e.seq)) {
        if (c.ack_out.empty()) touched_.push_back(ci);
        AppendRange(&c.ack_out, e.seq);
      }
      continue;
    }
    if (refusals_in_frame_ >= kMaxRefusalsPerFrame) {
      error = "route: more than " + std::to_string(kMaxRefusalsPerFrame) +
              " separate refusals in one frame; its later entries are refused unread";
      Refuse(ci, e.seq, wire::kCodeRejected, &error);
      continue;
    }
    if (e.size > config_->max_event) {
      error = "event of " + std::to_string(e.size) + " bytes exceeds limits.max_event (" +
              std::to_string(config_->max_event) + " bytes)";
      Refuse(ci, e.seq, wire::kCodeTooLarge, &error);
      continue;
    }
    wire::EventView ev;
    if (!wire::CheckEvent(e.event, e.size, limits_, &ev, &error)) {
      Refuse(ci, e.seq, wire::kCodeInvalidPayload, &error);
      continue;
    }
    uint64_t mask = 0;
    bool rewritten = false;
    if (const char* code = Resolve(ev, e, ci, &mask, &rewritten, &error)) {
      Refuse(ci, e.seq, code, &error);
      continue;
    }
    // The routes chose or added destinations: the ack's trailer names them.
    const bool tell_routed = rewritten || (!ev.has_dests && mask != 0);
    uint64_t fresh = mask;  // the destinations the event is stored for
    const bool want_delivered = (e.flags & wire::kFlagWantDelivered) != 0;
    uint64_t part = 0;
    if (ev.has_key && !keys_.empty()) {
      // A key dedupes per destination: only those that have not had it yet
      // get the event.
      ExpireKeys(now_us);
      earlier_.clear();
      for (const auto& t : decision_.targets) {
        const uint64_t lsn = LookupKey(config_->destinations[t.dest].name, ev.key);
        if (lsn == 0) continue;
        fresh &= ~(1ull << t.dest);
        auto it = std::find_if(earlier_.begin(), earlier_.end(),
                               [&](const auto& x) { return x.first == lsn; });
        if (it == earlier_.end()) {
          earlier_.emplace_back(lsn, 1ull << t.dest);
        } else {
          it->second |= 1ull << t.dest;
        }
      }
      if (!earlier_.empty()) {
        stats_.repeated_keys.fetch_add(1, std::memory_order_relaxed);
        // 'delivered' once each destination has the event stored for it:
        // the earlier ones, and this one for the fresh destinations.
        const size_t parts = earlier_.size() + (fresh != 0 ? 1 : 0);
        if (want_delivered && parts > 1) {
          part = next_part_++;
          parts_left_[part] = static_cast<uint32_t>(parts);
        }
        uint64_t newest = 0;
        for (const auto& [lsn, m] : earlier_) {
          newest = std::max(newest, lsn);
          if (want_delivered) {
            waiters_[m].push_back(Waiter{lsn, ci, e.seq, part});
            ++waiter_count_;
            ++c.waiting;
            WatchOutcomes(m, lsn);  // its outcomes, those recorded from now on
          }
        }
        if (fresh == 0) {
          // Every destination had this key: acknowledged, not delivered twice.
          c.taken.Add(e.seq);
          if (tell_routed) c.routed[e.seq] = mask;
          if (newest < log_->durable_next_lsn()) {
            c.durable.Add(e.seq);
            if (c.ack_out.empty()) touched_.push_back(ci);
            AppendRange(&c.ack_out, e.seq);
          } else {
            deferred_acks_.push_back(PendingAck{ci, e.seq, newest, 0, part});
          }
          continue;
        }
        // Stored for the new destinations only. Its ack follows the earlier
        // events' (they are before it in the log).
        StoreFor(ev, e, fresh);
        rewritten = true;
      }
    }
    const uint64_t lsn =
        rewritten ? log_->Append(now_us, client_id, e.seq, event_buf_.data(), event_buf_.size())
                  : log_->Append(now_us, client_id, e.seq, e.event, e.size);
    if (tell_routed) c.routed[e.seq] = mask;
    if (ev.has_key) {
      for (uint64_t m = fresh; m != 0; m &= m - 1) {
        const std::string& name = config_->destinations[__builtin_ctzll(m)].name;
        RememberKey(name, ev.key, lsn, now_us);
        if (journal_) {
          journal_pending_.push_back(JournalEntry{PairKey(name, ev.key), lsn, now_us});
        }
      }
    }
    if (pending_acks_.empty()) pending_since_us_ = MonoMicros();
    // Watched now, before the event is durable and any pipeline can read it.
    if (want_delivered && fresh != 0) WatchOutcomes(fresh, lsn);
    pending_acks_.push_back(PendingAck{ci, e.seq, lsn, want_delivered ? fresh : 0, part});
    c.taken.Add(e.seq);
    stats_.events.fetch_add(1, std::memory_order_relaxed);
    stats_.bytes.fetch_add(e.size, std::memory_order_relaxed);
    for (uint64_t m = fresh; m != 0; m &= m - 1) {
      routed_to_[__builtin_ctzll(m)].fetch_add(1, std::memory_order_relaxed);
    }
  }
  FlushRefusal();
}

void Ingest::HandleMessage(const uint8_t* id, size_t id_size, const uint8_t* data, size_t size,
                           const Peer& peer) {
  // Only a hello makes a client: frames from routing ids that said none cost
  // no memory.
  const std::string_view identity(reinterpret_cast<const char*>(id), id_size);
  wire::FrameType type;
  std::string error;
  if (!wire::PeekHeader(data, size, &type, &error)) {
    stats_.bad_frames.fetch_add(1, std::memory_order_relaxed);
    NackTo(identity, 0, 0, wire::kCodeRejected, error);
    return;
  }
  switch (type) {
    case wire::FrameType::kHello: {
      const uint32_t ci = ClientFor(id, id_size);
      if (ci == kNoClient) {
        NackTo(identity, 0, 0, wire::kCodeBackpressure,
               "forkd already remembers limits.max_clients (" +
                   std::to_string(config_->max_clients) +
                   ") clients, each with events in flight; say hello again later");
        return;
      }
      Touch(ci, MonoMicros());
      HandleHello(ci, peer, data, size);
      break;
    }
    case wire::FrameType::kRoute: {
      const uint32_t ci = FindClient(id, id_size);
      if (ci == kNoClient || !clients_[ci].hello) {
        // Never said hello, or was forgotten while idle: the client says
        // hello and resends (the addon does so on this nack). The seqs are
        // not refused: nothing of the frame was read.
        uint64_t first = 0, last = 0;
        if (size >= wire::kRouteHeaderSize && wire::GetU64(data + 2) != 0) {
          first = wire::GetU64(data + 2);
          const uint32_t count = wire::GetU32(data + 10);
          last = count > 0 && first + count - 1 >= first ? first + count - 1 : first;
        }
        NackTo(identity, first, last, wire::kCodeHelloRequired,
               "forkd does not know this client (it sent no hello, or was idle past "
               "limits.client_idle and forgotten): send hello, then the events again");
        return;
      }
      Touch(ci, MonoMicros());
      HandleRoute(ci, peer, data, size);
      break;
    }
    default:
      stats_.bad_frames.fetch_add(1, std::memory_order_relaxed);
      NackTo(identity, 0, 0, wire::kCodeRejected,
             "frame type " + std::to_string(static_cast<int>(type)) + " is not for forkd");
  }
}

int64_t Ingest::PollTimeoutMs() const {
  if (!pending_acks_.empty() && !log_->commit_in_flight()) {
    const int64_t left = config_->batch_ms * 1000 - (MonoMicros() - pending_since_us_);
    return std::max<int64_t>(0, (left + 999) / 1000);
  }
  if (waiter_count_ > 0) return 2;
  return 200;
}

void Ingest::Run() {
  zmq_pollitem_t items[3] = {
      {socket_, 0, ZMQ_POLLIN, 0},
      {nullptr, log_->completion_fd(), ZMQ_POLLIN, 0},
      {nullptr, wake_fd_, ZMQ_POLLIN, 0},
  };
  zmq_msg_t id, body;
  zmq_msg_init(&id);
  zmq_msg_init(&body);
  while (true) {
    const bool stopping = stopping_.load();
    if (stopping && log_->pending_entries() == 0 && !log_->commit_in_flight()) break;
    // Past limits.max_pending the socket is not read until the commit in
    // flight completes: the peers' messages wait in ZeroMQ's queues (RCVHWM),
    // then in the kernel's, then in the senders. While stopping, it is not
    // read either: only the log is drained.
    const bool full = HeldBytes() >= static_cast<size_t>(config_->max_pending);
    if (full && !reading_paused_) stats_.read_pauses.fetch_add(1, std::memory_order_relaxed);
    reading_paused_ = full;
    const bool read = !stopping && !full;
    const int n = zmq_poll(read ? items : items + 1, read ? 3 : 2,
                           stopping ? 50 : PollTimeoutMs());
    if (n < 0 && errno != EINTR) {
      spdlog::error("poll: {}", zmq_strerror(errno));
      break;
    }
    if (read && (items[0].revents & ZMQ_POLLIN)) {
      for (int i = 0; i < kMaxMessagesPerRound; ++i) {
        if (HeldBytes() >= static_cast<size_t>(config_->max_pending)) {
          MaybeCommit(false);  // when none is in flight, this one makes room
          if (HeldBytes() >= static_cast<size_t>(config_->max_pending)) break;
        }
        if (zmq_msg_recv(&id, socket_, ZMQ_DONTWAIT) < 0) break;
        if (!zmq_msg_more(&id)) continue;  // a lone part: nothing to answer
        if (zmq_msg_recv(&body, socket_, 0) < 0) break;
        while (zmq_msg_more(&body)) {
          // Extra parts are not part of the protocol: read and drop them.
          zmq_msg_t extra;
          zmq_msg_init(&extra);
          zmq_msg_recv(&extra, socket_, 0);
          const bool more = zmq_msg_more(&extra);
          zmq_msg_close(&extra);
          if (!more) break;
        }
        HandleMessage(static_cast<const uint8_t*>(zmq_msg_data(&id)), zmq_msg_size(&id),
                      static_cast<const uint8_t*>(zmq_msg_data(&body)), zmq_msg_size(&body),
                      PeerOf(&body));
      }
      for (uint32_t ci : touched_) SendRanges(ci, &clients_[ci].ack_out, false);
      touched_.clear();
    }
    if (items[1].revents & ZMQ_POLLIN || (stopping && log_->commit_in_flight())) {
      HandleCompletion();
    }
    if (items[2].revents & ZMQ_POLLIN) {
      uint64_t v;
      [[maybe_unused]] ssize_t r = ::read(wake_fd_, &v, sizeof(v));
    }
    if (config_pending_.load()) {
      ApplyConfig();
      ApplyBlocked();
    }
    if (blocked_pending_.load()) ApplyBlocked();
    if (inject_pending_.load() && !stopping) TakeInjections();
    MaybeCommit(stopping);
    CheckDelivered();
    SyncJournal(false);
    ForgetIdleClients(MonoMicros());
    items[0].revents = items[1].revents = items[2].revents = 0;
  }
  zmq_msg_close(&id);
  zmq_msg_close(&body);
  SyncJournal(true);
  {
    std::lock_guard<std::mutex> lock(inject_mu_);
    for (auto& inj : inject_queue_) inj->done.set_value(Status::Retry("forkd is stopping"));
    inject_queue_.clear();
  }
  for (auto& inj : injected_) inj->done.set_value(Status::Retry("forkd stopped before the commit"));
  injected_.clear();
}

void Ingest::Finish() {
  CheckDelivered();
  if (waiter_count_ > 0) {
    spdlog::info("{} events still wait for delivery; their clients time out or retry",
                 waiter_count_);
  }
  if (socket_ != nullptr) {
    zmq_close(socket_);
    socket_ = nullptr;
  }
}

}  // namespace forkd::ingest
