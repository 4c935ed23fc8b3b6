#include "link.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#ifdef __linux__
#include <sys/eventfd.h>
#endif

#include <algorithm>
#include <cstring>

namespace fork_router {
namespace {

constexpr int kReconnectIvlMs = 100;
constexpr int kReconnectIvlMaxMs = 1000;
constexpr int64_t kMaxIncomingMessage = 16 << 20;  // acks and welcomes are small
constexpr size_t kPoolMax = 8;                      // emptied frames kept for reuse
constexpr size_t kPoolFrameMax = 2u << 20;          // larger frame buffers are freed
constexpr const char* kMonitorEndpoint = "inproc://fork-router.monitor";
// A hello unanswered this long: reconnect. forkd does not read a connection
// while it still holds another one with this client's id (its own old one
// after a network blip, until forkd's heartbeat drops it).
constexpr int64_t kWelcomeTimeoutMs = 3000;

}  // namespace

void Frame::Reset() {
  bytes.Resize(wire::kRouteHeaderSize);
  first_seq = 0;
  count = 0;
  deadlines.clear();
}

Link::Link(LinkOptions options) : options_(std::move(options)) { open_.Reset(); }

Link::~Link() { Stop(); }

int64_t Link::NowMs() {
  timespec ts;
#ifdef CLOCK_MONOTONIC_COARSE
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
#else
  clock_gettime(CLOCK_MONOTONIC, &ts);
#endif
  return static_cast<int64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}

bool Link::Start(Notify notify, std::string* error) {
  notify_ = std::move(notify);
  auto fail = [&](const std::string& what) {
    *error = what + ": " + zmq_strerror(zmq_errno());
    Stop();
    return false;
  };
  ctx_ = zmq_ctx_new();
  if (ctx_ == nullptr) return fail("cannot create a ZeroMQ context");
  zmq_ctx_set(ctx_, ZMQ_BLOCKY, 0);
  sock_ = zmq_socket(ctx_, ZMQ_DEALER);
  if (sock_ == nullptr) return fail("cannot create a ZeroMQ socket");
  const int one = 1, zero = 0, ivl = kReconnectIvlMs, ivl_max = kReconnectIvlMaxMs;
  const int64_t max_msg = kMaxIncomingMessage;
  zmq_setsockopt(sock_, ZMQ_ROUTING_ID, options_.client_id, wire::kClientIdSize);
  zmq_setsockopt(sock_, ZMQ_IMMEDIATE, &one, sizeof one);  // queue only to live connections
  zmq_setsockopt(sock_, ZMQ_LINGER, &zero, sizeof zero);
  zmq_setsockopt(sock_, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl);
  zmq_setsockopt(sock_, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max);
  zmq_setsockopt(sock_, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
  if (!options_.curve_server_key.empty()) {
    std::string pub = options_.curve_public_key, sec = options_.curve_secret_key;
    if (sec.empty()) {
      // No stable pair given: one for this client, good for a forkd that
      // accepts any client key.
      char p[41] = {}, s[41] = {};
      if (zmq_curve_keypair(p, s) != 0) return fail("cannot make a CURVE key pair");
      pub = p;
      sec = s;
    }
    char derived[41] = {};
    if (zmq_curve_public(derived, sec.c_str()) != 0 || pub != derived) {
      *error = "curvePublicKey is not the public key of curveSecretKey (use the two lines of "
               "one `forkd keygen`)";
      Stop();
      return false;
    }
    if (zmq_setsockopt(sock_, ZMQ_CURVE_SERVERKEY, options_.curve_server_key.data(),
                       options_.curve_server_key.size()) != 0 ||
        zmq_setsockopt(sock_, ZMQ_CURVE_PUBLICKEY, pub.data(), pub.size()) != 0 ||
        zmq_setsockopt(sock_, ZMQ_CURVE_SECRETKEY, sec.data(), sec.size()) != 0) {
      return fail("cannot use the CURVE keys (this libzmq may lack CURVE)");
    }
  }
  // Reconnects are seen through the socket monitor: a completed handshake
  // means a (new) forkd session, so hello again and resend what is unacked.
  // Failed handshakes say why forkd cannot be reached (CURVE keys).
  if (zmq_socket_monitor(sock_, kMonitorEndpoint,
                         ZMQ_EVENT_CONNECTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED |
                             ZMQ_EVENT_DISCONNECTED | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL |
                             ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) != 0) {
    return fail("cannot monitor the ZeroMQ socket");
  }
  monitor_ = zmq_socket(ctx_, ZMQ_PAIR);
  if (monitor_ == nullptr) return fail("cannot create the monitor socket");
  zmq_setsockopt(monitor_, ZMQ_LINGER, &zero, sizeof zero);
  if (zmq_connect(monitor_, kMonitorEndpoint) != 0) return fail("cannot connect the monitor");
  if (zmq_connect(sock_, options_.endpoint.c_str()) != 0) {
    return fail("cannot connect to " + options_.endpoint);
  }
#ifdef __linux__
  wake_fd_ = wake_wfd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wake_fd_ < 0) return fail("cannot create an eventfd");
#else
  int fds[2];
  if (pipe(fds) != 0) return fail("cannot create a pipe");
  for (int fd : fds) {
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  wake_fd_ = fds[0];
  wake_wfd_ = fds[1];
#endif
  thread_ = std::thread([this] { Run(); });
  return true;
}

void Link::Stop() {
  if (thread_.joinable()) {
    stop_.store(true, std::memory_order_release);
    const uint64_t one = 1;
    ssize_t ignored = write(wake_wfd_, &one, sizeof one);
    (void)ignored;
    thread_.join();
  }
  // Sockets the thread did not get to close (Start failed half-way).
  if (monitor_ != nullptr) zmq_close(monitor_);
  if (sock_ != nullptr) zmq_close(sock_);
  monitor_ = sock_ = nullptr;
  if (ctx_ != nullptr) zmq_ctx_term(ctx_);  // immediate: every socket had linger 0
  ctx_ = nullptr;
  if (wake_wfd_ >= 0 && wake_wfd_ != wake_fd_) close(wake_wfd_);
  if (wake_fd_ >= 0) close(wake_fd_);
  wake_fd_ = wake_wfd_ = -1;
  connected_.store(false, std::memory_order_relaxed);
}

uint64_t Link::Enqueue(const uint8_t* event, uint32_t size, uint8_t flags, int64_t deadline_ms) {
  in_flight_.fetch_add(1, std::memory_order_relaxed);
  in_flight_bytes_.fetch_add(size, std::memory_order_relaxed);
  const uint64_t seq = next_seq_++;
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (open_.count == 0) open_.first_seq = seq;
    wire::AppendRouteEntry(&open_.bytes, flags, event, size);
    open_.deadlines.push_back(deadline_ms);
    ++open_.count;
    if (open_.bytes.size() >= kSealBytes) {
      sealed_.push_back(std::move(open_));
      open_ = TakePooledFrame();
      wake = true;
    }
  }
  dirty_ = !wake;
  if (wake && !wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    ssize_t ignored = write(wake_wfd_, &one, sizeof one);
    (void)ignored;
  }
  return seq;
}

void Link::Kick() {
  if (!dirty_) return;
  dirty_ = false;
  if (!wake_pending_.exchange(true, std::memory_order_acq_rel)) {
    const uint64_t one = 1;
    ssize_t ignored = write(wake_wfd_, &one, sizeof one);
    (void)ignored;
  }
}

void Link::TakeCompletions(CompletionBatch* out) {
  out->clear();
  std::lock_guard<std::mutex> lock(mu_);
  std::swap(*out, completions_);
  notify_pending_ = false;
}

LinkStats Link::Stats() const {
  LinkStats s;
  s.sent = sent_.load(std::memory_order_relaxed);
  s.acked = acked_.load(std::memory_order_relaxed);
  s.delivered = delivered_.load(std::memory_order_relaxed);
  s.nacked = nacked_.load(std::memory_order_relaxed);
  s.timed_out = timed_out_.load(std::memory_order_relaxed);
  s.in_flight = in_flight_.load(std::memory_order_relaxed);
  s.in_flight_bytes = in_flight_bytes_.load(std::memory_order_relaxed);
  s.reconnects = reconnects_.load(std::memory_order_relaxed);
  s.resent = resent_.load(std::memory_order_relaxed);
  s.connected = connected_.load(std::memory_order_relaxed);
  return s;
}

// [I/O] Everything below runs on the I/O thread.

void Link::Run() {
  zmq_pollitem_t items[3];
  while (!stop_.load(std::memory_order_acquire)) {
    const bool want_out = hello_pending_ || (state_ == State::kReady && blocked_);
    items[0] = {sock_, 0, static_cast<short>(ZMQ_POLLIN | (want_out ? ZMQ_POLLOUT : 0)), 0};
    items[1] = {monitor_, 0, ZMQ_POLLIN, 0};
    items[2] = {nullptr, wake_fd_, ZMQ_POLLIN, 0};
    const int rc = zmq_poll(items, 3, NextTimeoutMs(NowMs()));
    if (rc < 0) {
      if (zmq_errno() == ETERM) break;
      continue;  // EINTR
    }
    if (items[2].revents & ZMQ_POLLIN) {
      uint64_t buf[8];
      while (read(wake_fd_, buf, sizeof buf) > 0) {
      }
      wake_pending_.store(false, std::memory_order_release);
      TakeOutbox();
    }
    if (items[1].revents & ZMQ_POLLIN) HandleMonitor();
    if (items[0].revents & ZMQ_POLLOUT) blocked_ = false;
    if (items[0].revents & ZMQ_POLLIN) HandleIncoming();
    if (state_ == State::kHelloSent && !hello_pending_ &&
        NowMs() - hello_sent_ms_ >= kWelcomeTimeoutMs) {
      Reconnect();
    }
    if (hello_pending_) SendHello();
    SendPending();
    ExpireDeadlines(NowMs());
    Collect();
    Publish();
  }
  Publish();
  zmq_socket_monitor(sock_, nullptr, 0);
  zmq_close(monitor_);
  zmq_close(sock_);
  monitor_ = sock_ = nullptr;
}

void Link::TakeOutbox() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    taking_.swap(sealed_);
    if (open_.count > 0) {
      taking_.push_back(std::move(open_));
      open_ = TakePooledFrame();
    }
  }
  for (Frame& f : taking_) Register(std::move(f));
  taking_.clear();
}

void Link::Register(Frame frame) {
  wire::WriteRouteHeader(frame.bytes.data(), frame.first_seq, frame.count);
  const uint64_t frame_no = frames_base_ + frames_.size();
  const uint8_t* p = frame.bytes.data() + wire::kRouteHeaderSize;
  for (uint32_t i = 0; i < frame.count; ++i) {
    Slot& s = slots_.emplace_back();
    s.deadline = frame.deadlines[i];
    s.frame_no = frame_no;
    s.flags = p[0];
    s.size = wire::GetU32(p + 1);
    p += wire::kRouteEntryHeaderSize + s.size;
    const uint64_t seq = frame.first_seq + i;
    if (deadline_fifo_.empty() || deadline_fifo_.back().first <= s.deadline) {
      deadline_fifo_.emplace_back(s.deadline, seq);
    } else {
      deadline_heap_.emplace(s.deadline, seq);
    }
  }
  const uint32_t count = frame.count;
  frames_.push_back(StoredFrame{std::move(frame), count});
}

void Link::HandleMonitor() {
  while (true) {
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, monitor_, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&msg);
      return;
    }
    uint16_t event = 0;
    uint32_t value = 0;
    if (zmq_msg_size(&msg) >= 6) {
      std::memcpy(&event, zmq_msg_data(&msg), 2);
      std::memcpy(&value, static_cast<const uint8_t*>(zmq_msg_data(&msg)) + 2, 4);
    }
    const bool more = zmq_msg_more(&msg);
    zmq_msg_close(&msg);
    if (more) {  // the second part names the endpoint; parts arrive together
      zmq_msg_t addr;
      zmq_msg_init(&addr);
      zmq_msg_recv(&addr, monitor_, 0);
      zmq_msg_close(&addr);
    }
    const bool curve = !options_.curve_server_key.empty();
    if (event == ZMQ_EVENT_CONNECTED) {
      handshaken_ = false;
    } else if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
      handshaken_ = true;
      state_ = State::kHelloSent;
      hello_pending_ = true;
      blocked_ = false;
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
      problem_ = "forkd refused this client's CURVE key (status " + std::to_string(value) +
                 "): add its public key to forkd's curve.clients, or give the client the key "
                 "pair that is listed there (curvePublicKey/curveSecretKey)";
    } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ||
               event == ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL) {
      if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH && !curve) {
        problem_ = "the handshake failed: forkd requires CURVE on this endpoint; set "
                   "curveServerKey (or FORK_CURVE_SERVER_KEY) to forkd's public key";
      } else if (value == ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH) {
        problem_ = "the handshake failed: forkd does not use CURVE on this endpoint, but "
                   "curveServerKey is set";
      } else if (curve) {
        problem_ = "the CURVE handshake failed: is curveServerKey forkd's public key?";
      } else {
        problem_ = "the ZeroMQ handshake with forkd failed";
      }
    } else if (event == ZMQ_EVENT_DISCONNECTED) {
      // forkd closes a CURVE connection whose hello it cannot decrypt
      // without telling why: a server key that is not forkd's.
      if (curve && !handshaken_ && problem_.empty()) {
        problem_ = "the CURVE handshake failed (forkd closed the connection): is "
                   "curveServerKey forkd's public key?";
      }
      handshaken_ = false;
      // Whatever ZeroMQ still queued for the old connection is gone; it is
      // all resent after the next welcome (forkd dedupes by client id + seq).
      state_ = State::kDisconnected;
      hello_pending_ = false;
      blocked_ = false;
      connected_.store(false, std::memory_order_relaxed);
    }
  }
}

void Link::Reconnect() {
  if (problem_.empty()) {
    problem_ = "forkd did not answer this client's hello within " +
               std::to_string(kWelcomeTimeoutMs) +
               " ms (another connection may hold its client id); reconnecting";
  }
  // Whatever ZeroMQ queued for this connection goes with it; it is all
  // resent after the next welcome.
  zmq_disconnect(sock_, options_.endpoint.c_str());
  zmq_connect(sock_, options_.endpoint.c_str());
  state_ = State::kDisconnected;
  hello_pending_ = false;
  handshaken_ = false;
  blocked_ = false;
  connected_.store(false, std::memory_order_relaxed);
}

void Link::SendHello() {
  scratch_.clear();
  wire::Hello hello;
  std::memcpy(hello.client_id, options_.client_id, wire::kClientIdSize);
  hello.agent = options_.agent;
  hello.outcomes = true;
  hello.has_session = true;
  std::memcpy(hello.session, options_.session, wire::kClientIdSize);
  wire::EncodeHello(hello, &scratch_);
  if (zmq_send(sock_, scratch_.data(), scratch_.size(), ZMQ_DONTWAIT) >= 0) {
    hello_pending_ = false;
    hello_sent_ms_ = NowMs();
  }
}

void Link::HandleIncoming() {
  while (true) {
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, sock_, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&msg);
      return;
    }
    HandleFrame(static_cast<const uint8_t*>(zmq_msg_data(&msg)), zmq_msg_size(&msg));
    zmq_msg_close(&msg);
  }
}

void Link::HandleFrame(const uint8_t* data, size_t size) {
  // Frames that do not decode are dropped: the events they would have
  // settled time out, which is the honest outcome.
  wire::FrameType type;
  std::string error;
  if (!wire::PeekHeader(data, size, &type, &error)) return;
  switch (type) {
    case wire::FrameType::kWelcome: {
      wire::Welcome welcome;
      if (!wire::DecodeWelcome(data, size, &welcome, &error)) return;
      max_event_.store(welcome.max_event != 0 ? welcome.max_event : wire::kDefaultMaxEvent,
                       std::memory_order_relaxed);
      state_ = State::kReady;
      blocked_ = false;
      problem_.clear();
      forkd_outcomes_ = welcome.outcomes;
      if (ever_ready_) reconnects_.fetch_add(1, std::memory_order_relaxed);
      ever_ready_ = true;
      connected_.store(true, std::memory_order_relaxed);
      send_cursor_ = frames_base_;  // (re)send everything not yet acknowledged
      break;
    }
    case wire::FrameType::kAck: {
      wire::Ack ack;
      if (wire::DecodeAck(data, size, &ack, &error)) ApplyAck(ack);
      break;
    }
    case wire::FrameType::kNack: {
      wire::Nack nack;
      if (!wire::DecodeNack(data, size, &nack, &error)) break;
      if (nack.code == wire::kCodeHelloRequired) {
        // forkd forgot this client while it was idle (or never had its
        // hello): say hello again; the welcome resends what is unacked,
        // these events included. Later such nacks, for frames sent before
        // the hello, change nothing.
        if (state_ == State::kReady) {
          state_ = State::kHelloSent;
          hello_pending_ = true;
        }
        break;
      }
      ApplyNack(nack);
      break;
    }
    case wire::FrameType::kDelivered: {
      wire::Delivered delivered;
      if (wire::DecodeDelivered(data, size, &delivered, &error)) ApplyDelivered(delivered);
      break;
    }
    default:
      break;
  }
}

void Link::SendPending() {
  if (state_ != State::kReady || blocked_) return;
  while (send_cursor_ < frames_base_ + frames_.size()) {
    StoredFrame& sf = frames_[send_cursor_ - frames_base_];
    if (sf.unresolved > 0 && !SendFrame(sf)) {
      blocked_ = true;  // wait for POLLOUT (or the next handshake)
      return;
    }
    ++send_cursor_;
  }
}

bool Link::SendBytes(const uint8_t* data, size_t size) {
  return zmq_send(sock_, data, size, ZMQ_DONTWAIT) >= 0;
}

bool Link::SendFrame(StoredFrame& sf) {
  const Frame& f = sf.frame;
  uint64_t first_time = 0, again = 0;
  auto mark = [&](uint64_t first, uint32_t n) {
    for (uint64_t seq = first; seq < first + n; ++seq) {
      Slot* s = Find(seq);
      if (s == nullptr) continue;
      if (s->state == SlotState::kQueued) {
        s->state = SlotState::kSent;
        ++first_time;
      } else if (s->state == SlotState::kSent) {
        ++again;
      }
    }
  };
  bool ok = true;
  if (sf.unresolved == f.count) {
    ok = SendBytes(f.bytes.data(), f.bytes.size());
    if (ok) mark(f.first_seq, f.count);
  } else {
    // Some events are settled (acked, rejected or timed out): send the others
    // as runs of consecutive sequence numbers, which is what kRoute carries.
    const uint8_t* p = f.bytes.data() + wire::kRouteHeaderSize;
    uint64_t run_first = 0;
    uint32_t run_count = 0;
    auto flush = [&]() {
      if (run_count == 0) return true;
      wire::WriteRouteHeader(scratch_.data(), run_first, run_count);
      if (!SendBytes(scratch_.data(), scratch_.size())) return false;
      mark(run_first, run_count);
      run_count = 0;
      return true;
    };
    for (uint32_t i = 0; i < f.count && ok; ++i) {
      const uint64_t seq = f.first_seq + i;
      const size_t entry = wire::kRouteEntryHeaderSize + wire::GetU32(p + 1);
      Slot* s = Find(seq);
      if (s != nullptr && s->unresolved()) {
        if (run_count == 0) {
          run_first = seq;
          scratch_.Resize(wire::kRouteHeaderSize);
        }
        scratch_.Append(p, entry);
        ++run_count;
      } else {
        ok = flush();
      }
      p += entry;
    }
    if (ok) ok = flush();
  }
  if (first_time) sent_.fetch_add(first_time, std::memory_order_relaxed);
  if (again) resent_.fetch_add(again, std::memory_order_relaxed);
  return ok;
}

Link::Slot* Link::Find(uint64_t seq) {
  if (seq < slots_base_ || seq - slots_base_ >= slots_.size()) return nullptr;
  return &slots_[seq - slots_base_];
}

bool Link::Settled(uint64_t seq) {
  Slot* s = Find(seq);
  return s == nullptr || s->state == SlotState::kSettled;
}

void Link::Resolve(Slot& s) {
  StoredFrame& sf = frames_[s.frame_no - frames_base_];
  --sf.unresolved;
  in_flight_bytes_.fetch_sub(s.size, std::memory_order_relaxed);
}

void Link::Settle(uint64_t seq, Slot& s, Outcome outcome, int32_t detail, bool outcomes) {
  if (s.unresolved()) Resolve(s);
  s.state = SlotState::kSettled;
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  if (s.routed != nullptr) {
    if (detail < 0) {
      detail = static_cast<int32_t>(local_.details.size());
      local_.details.emplace_back();
    }
    CompletionDetail& d = local_.details[static_cast<size_t>(detail)];
    d.routed = std::move(*s.routed);
    d.has_routed = true;
  }
  s.routed.reset();
  local_.items.push_back(Completion{seq, outcome, outcomes, detail});
}

void Link::ApplyAck(wire::Ack& ack) {
  for (wire::Routed& r : ack.routed) {
    Slot* s = Find(r.seq);
    if (s != nullptr && s->state != SlotState::kSettled) {
      s->routed = std::make_unique<std::vector<std::string>>(std::move(r.destinations));
    }
  }
  if (slots_.empty()) return;
  const uint64_t end = slots_base_ + slots_.size() - 1;
  uint64_t n = 0;
  for (const wire::SeqRange& r : ack.ranges) {
    for (uint64_t seq = std::max(r.first, slots_base_); seq <= std::min(r.last, end); ++seq) {
      Slot& s = slots_[seq - slots_base_];
      if (!s.unresolved()) continue;
      ++n;
      if (s.flags & wire::kFlagWantDelivered) {
        Resolve(s);
        s.state = SlotState::kAcked;
      } else {
        Settle(seq, s, Outcome::kAccepted, -1);
      }
    }
  }
  acked_.fetch_add(n, std::memory_order_relaxed);
}

void Link::ApplyDelivered(wire::Delivered& delivered) {
  if (slots_.empty()) return;
  const uint64_t end = slots_base_ + slots_.size() - 1;
  // The trailer is in seq order (the decoder checked): found by binary search.
  auto& listed = delivered.outcomes;
  auto find = [&](uint64_t seq) -> wire::EventOutcomes* {
    auto it = std::lower_bound(listed.begin(), listed.end(), seq,
                               [](const wire::EventOutcomes& e, uint64_t s) { return e.seq < s; });
    return it != listed.end() && it->seq == seq ? &*it : nullptr;
  };
  uint64_t n = 0, refused = 0;
  for (const wire::SeqRange& r : delivered.ranges) {
    for (uint64_t seq = std::max(r.first, slots_base_); seq <= std::min(r.last, end); ++seq) {
      Slot& s = slots_[seq - slots_base_];
      if (s.state == SlotState::kSettled) continue;
      wire::EventOutcomes* e = listed.empty() ? nullptr : find(seq);
      if (e == nullptr) {
        ++n;
        Settle(seq, s, Outcome::kDelivered, -1, forkd_outcomes_);
        continue;
      }
      const auto detail = static_cast<int32_t>(local_.details.size());
      CompletionDetail& d = local_.details.emplace_back();
      // A destination that dead-lettered or shed the event makes the call
      // fail; filtered ones do not.
      for (const wire::DestinationOutcome& o : e->outcomes) {
        if (o.kind == wire::OutcomeKind::kFiltered) continue;
        d.message += (d.message.empty() ? "" : "; ") + wire::DescribeOutcome(o);
      }
      d.outcomes = std::move(e->outcomes);
      if (d.message.empty()) {
        ++n;
        Settle(seq, s, Outcome::kDelivered, detail, true);
      } else {
        d.code = wire::kCodeRejected;
        ++refused;
        Settle(seq, s, Outcome::kRejected, detail, true);
      }
    }
  }
  delivered_.fetch_add(n, std::memory_order_relaxed);
  if (refused) nacked_.fetch_add(refused, std::memory_order_relaxed);
}

void Link::ApplyNack(wire::Nack& nack) {
  if (state_ == State::kHelloSent && nack.range.first == 0 && nack.range.last == 0) {
    // forkd refused the hello (its client id bound elsewhere): nothing is
    // sent on this connection, and events that time out say why.
    problem_ = "forkd refused this client's hello: " + nack.message;
    return;
  }
  if (slots_.empty()) return;
  const uint64_t end = slots_base_ + slots_.size() - 1;
  const auto detail = static_cast<int32_t>(local_.details.size());
  CompletionDetail& d = local_.details.emplace_back();
  d.code = std::move(nack.code);
  d.message = std::move(nack.message);
  uint64_t n = 0;
  for (uint64_t seq = std::max(nack.range.first, slots_base_); seq <= std::min(nack.range.last, end);
       ++seq) {
    Slot& s = slots_[seq - slots_base_];
    if (s.state == SlotState::kSettled) continue;
    ++n;
    Settle(seq, s, Outcome::kRejected, detail);
  }
  nacked_.fetch_add(n, std::memory_order_relaxed);
}

void Link::ExpireDeadlines(int64_t now) {
  uint64_t n = 0;
  int32_t problem_detail = -1;  // shared by this turn's unavailable events
  auto expire = [&](uint64_t seq) {
    Slot* s = Find(seq);
    if (s == nullptr || s->state == SlotState::kSettled) return;
    Outcome o;
    if (s->state == SlotState::kAcked) {
      o = Outcome::kDeliveryTimedOut;
    } else if (s->state == SlotState::kSent || state_ == State::kReady) {
      o = Outcome::kTimedOut;
    } else {
      o = Outcome::kUnavailable;  // never handed to forkd, and no connection now
    }
    ++n;
    int32_t detail = -1;
    if (o == Outcome::kUnavailable && !problem_.empty()) {
      if (problem_detail < 0) {
        problem_detail = static_cast<int32_t>(local_.details.size());
        local_.details.emplace_back().message = problem_;
      }
      detail = problem_detail;
    }
    Settle(seq, *s, o, detail);
  };
  while (!deadline_fifo_.empty() && deadline_fifo_.front().first <= now) {
    expire(deadline_fifo_.front().second);
    deadline_fifo_.pop_front();
  }
  while (!deadline_heap_.empty() && deadline_heap_.top().first <= now) {
    expire(deadline_heap_.top().second);
    deadline_heap_.pop();
  }
  if (n) timed_out_.fetch_add(n, std::memory_order_relaxed);
}

int Link::NextTimeoutMs(int64_t now) {
  int64_t next = INT64_MAX;
  if (!deadline_fifo_.empty()) next = deadline_fifo_.front().first;
  if (!deadline_heap_.empty()) next = std::min(next, deadline_heap_.top().first);
  if (state_ == State::kHelloSent && !hello_pending_) {
    next = std::min(next, hello_sent_ms_ + kWelcomeTimeoutMs);
  }
  if (next == INT64_MAX) return -1;
  // +1: the clock is coarse; waking a little late beats spinning early.
  return static_cast<int>(std::clamp<int64_t>(next - now + 1, 0, 60000));
}

void Link::Collect() {
  while (!slots_.empty() && slots_.front().state == SlotState::kSettled) {
    slots_.pop_front();
    ++slots_base_;
  }
  while (!frames_.empty() && frames_.front().unresolved == 0) {
    Recycle(std::move(frames_.front().frame));
    frames_.pop_front();
    ++frames_base_;
  }
  send_cursor_ = std::max(send_cursor_, frames_base_);
  while (!deadline_fifo_.empty() && Settled(deadline_fifo_.front().second)) {
    deadline_fifo_.pop_front();
  }
  while (!deadline_heap_.empty() && Settled(deadline_heap_.top().second)) deadline_heap_.pop();
}

Frame Link::TakePooledFrame() {
  Frame f;
  if (!pool_.empty()) {
    f = std::move(pool_.back());
    pool_.pop_back();
  }
  f.Reset();
  return f;
}

void Link::Recycle(Frame frame) {
  if (frame.bytes.capacity() > kPoolFrameMax) return;
  std::lock_guard<std::mutex> lock(mu_);
  if (pool_.size() < kPoolMax) pool_.push_back(std::move(frame));
}

void Link::Publish() {
  if (local_.empty()) return;
  bool notify = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (completions_.empty()) {
      std::swap(completions_, local_);
    } else {
      const auto offset = static_cast<int32_t>(completions_.details.size());
      for (Completion c : local_.items) {
        if (c.detail >= 0) c.detail += offset;
        completions_.items.push_back(c);
      }
      for (CompletionDetail& d : local_.details) completions_.details.push_back(std::move(d));
    }
    notify = !notify_pending_;
    notify_pending_ = true;
  }
  local_.clear();
  if (notify && notify_) notify_();
}

}  // namespace fork_router
