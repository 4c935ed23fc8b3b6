#include "ingest/inproc_client.h"

#include <zmq.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <unordered_map>

#include "core/clock.h"
#include "wire/random.h"

namespace forkd::ingest {

namespace {

constexpr int64_t kHelloTimeoutMs = 2000;
constexpr int64_t kStopGraceMs = 2000;

int64_t NowMs() { return MonoMicros() / 1000; }

}  // namespace

InprocClient::~InprocClient() {
  if (socket != nullptr) zmq_close(socket);
}

std::unique_ptr<InprocClient> OpenInprocClient(void* ctx_, const std::string& endpoint_,
                                               std::string* error) {
  auto c = std::make_unique<InprocClient>();
  c->socket = zmq_socket(ctx_, ZMQ_DEALER);
  if (c->socket == nullptr) {
    *error = std::string("cannot open a connection to ingest: ") + zmq_strerror(errno);
    return nullptr;
  }
  wire::FillRandom(c->id, sizeof c->id);
  wire::FillRandom(c->session, sizeof c->session);
  const int linger = 0;
  zmq_setsockopt(c->socket, ZMQ_LINGER, &linger, sizeof linger);
  zmq_setsockopt(c->socket, ZMQ_ROUTING_ID, c->id, sizeof c->id);
  if (zmq_connect(c->socket, endpoint_.c_str()) != 0) {
    *error = std::string("cannot connect to ingest: ") + zmq_strerror(errno);
    return nullptr;
  }
  return c;
}

bool Hello(InprocClient* c, const char* agent, int64_t deadline_ms, std::string* error) {
  wire::Hello h;
  std::memcpy(h.client_id, c->id, sizeof c->id);
  h.agent = agent;
  h.outcomes = true;
  h.has_session = true;
  std::memcpy(h.session, c->session, sizeof c->session);
  c->frame.clear();
  wire::EncodeHello(h, &c->frame);
  if (zmq_send(c->socket, c->frame.data(), c->frame.size(), ZMQ_DONTWAIT) < 0) {
    *error = "ingest takes no more frames (forkd is overloaded)";
    return false;
  }
  for (;;) {
    const int64_t left = deadline_ms - NowMs();
    if (left <= 0) {
      *error = "ingest did not answer the hello";
      return false;
    }
    zmq_pollitem_t item{c->socket, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, static_cast<long>(std::min<int64_t>(left, 100))) <= 0) continue;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    if (zmq_msg_recv(&msg, c->socket, ZMQ_DONTWAIT) < 0) {
      zmq_msg_close(&msg);
      continue;
    }
    const auto* data = static_cast<const uint8_t*>(zmq_msg_data(&msg));
    const size_t size = zmq_msg_size(&msg);
    wire::FrameType type;
    std::string ignored;
    bool welcomed = false;
    if (wire::PeekHeader(data, size, &type, &ignored)) {
      if (type == wire::FrameType::kWelcome) {
        welcomed = true;
      } else if (type == wire::FrameType::kNack) {
        wire::Nack n;
        if (wire::DecodeNack(data, size, &n, &ignored) && n.range.first == 0 &&
            n.code != wire::kCodeHelloRequired) {
          *error = "ingest refused the hello: " + n.message;
          zmq_msg_close(&msg);
          return false;
        }
      }
    }
    zmq_msg_close(&msg);
    if (welcomed) {
      c->ready = true;
      return true;
    }
  }
}

void Route(InprocClient* c, InprocCall* call, const RouteSettings& rs, const std::atomic<bool>& stopping) {
  const size_t n = call->events.events.size();
  call->first_seq = c->next_seq;
  c->next_seq += n;
  const int64_t now = NowMs();
  call->states.resize(n);
  call->open = n;
  int64_t last_deadline = now;
  for (size_t i = 0; i < n; ++i) {
    const Event& ev = call->events.events[i];
    call->states[i].deadline_ms = now + (ev.timeout_ms > 0 ? ev.timeout_ms : rs.timeout_ms);
    last_deadline = std::max(last_deadline, call->states[i].deadline_ms);
  }
  auto fail = [&](size_t i, const char* code, const std::string& message) {
    InprocCall::State& s = call->states[i];
    if (s.state == InprocCall::State::kDone || s.state == InprocCall::State::kFailed) return;
    s.state = InprocCall::State::kFailed;
    s.code = code;
    s.message = message;
    --call->open;
  };
  auto settle = [&](size_t i, AckLevel reached) {
    InprocCall::State& s = call->states[i];
    if (s.state == InprocCall::State::kDone || s.state == InprocCall::State::kFailed) return;
    s.reached = reached;
    s.state = InprocCall::State::kDone;
    --call->open;
  };
  // Frames of at most max_frame bytes, in order.
  std::vector<std::pair<size_t, size_t>> frames;  // [first, last) event indexes
  {
    size_t start = 0, bytes = wire::kRouteHeaderSize;
    for (size_t i = 0; i < n; ++i) {
      const size_t add = wire::kRouteEntryHeaderSize + call->events.events[i].size;
      if (i > start && bytes + add > rs.max_frame) {
        frames.emplace_back(start, i);
        start = i;
        bytes = wire::kRouteHeaderSize;
      }
      bytes += add;
    }
    frames.emplace_back(start, n);
  }
  auto send_all = [&]() -> bool {
    for (const auto& [first, last] : frames) {
      wire::Buffer& f = c->frame;
      f.clear();
      f.Resize(wire::kRouteHeaderSize);
      for (size_t i = first; i < last; ++i) {
        const Event& ev = call->events.events[i];
        wire::AppendRouteEntry(&f, ev.ack == AckLevel::kDelivered ? wire::kFlagWantDelivered : 0,
                               call->events.wire.data() + ev.offset,
                               static_cast<uint32_t>(ev.size));
      }
      wire::WriteRouteHeader(f.data(), call->first_seq + first,
                             static_cast<uint32_t>(last - first));
      // A full pipe means ingest stopped reading (limits.max_pending): wait
      // a little, as the addon would, then give up with backpressure.
      const int64_t until = std::min(last_deadline, NowMs() + 1000);
      for (;;) {
        if (zmq_send(c->socket, f.data(), f.size(), ZMQ_DONTWAIT) >= 0) break;
        if (errno != EAGAIN || NowMs() >= until || stopping.load()) {
          for (size_t i = first; i < n; ++i) {
            if (call->states[i].state == InprocCall::State::kPending) {
              fail(i, wire::kCodeBackpressure,
                   "forkd is not taking events fast enough (its pending bytes are at "
                   "limits.max_pending); retry later");
            }
          }
          return false;
        }
        zmq_pollitem_t item{c->socket, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&item, 1, 10);
      }
      for (size_t i = first; i < last; ++i) {
        if (call->events.events[i].ack == AckLevel::kNone) settle(i, AckLevel::kNone);
      }
    }
    return true;
  };
  send_all();
  bool rehello = false;
  while (call->open > 0) {
    int64_t t = NowMs();
    if (stopping.load()) last_deadline = std::min(last_deadline, t + kStopGraceMs);
    for (size_t i = 0; i < n; ++i) {
      InprocCall::State& s = call->states[i];
      if ((s.state == InprocCall::State::kPending || s.state == InprocCall::State::kAccepted) &&
          (t >= s.deadline_ms || t >= last_deadline)) {
        const int64_t ms = call->events.events[i].timeout_ms > 0 ? call->events.events[i].timeout_ms
                                                                 : rs.timeout_ms;
        if (s.state == InprocCall::State::kAccepted) {
          fail(i, "FORK_TIMEOUT",
               "forkd accepted the event, but not every destination confirmed delivery within " +
                   std::to_string(ms) + " ms");
        } else {
          fail(i, "FORK_TIMEOUT",
               "forkd did not acknowledge the event within " + std::to_string(ms) + " ms");
        }
      }
    }
    if (call->open == 0) break;
    if (rehello) {
      rehello = false;
      std::string error;
      if (!Hello(c, rs.agent, std::min<int64_t>(last_deadline, NowMs() + kHelloTimeoutMs), &error)) {
        for (size_t i = 0; i < n; ++i) fail(i, wire::kCodeUnavailable, error);
        break;
      }
      send_all();
      continue;
    }
    zmq_pollitem_t item{c->socket, 0, ZMQ_POLLIN, 0};
    if (zmq_poll(&item, 1, 50) <= 0) continue;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    while (zmq_msg_recv(&msg, c->socket, ZMQ_DONTWAIT) >= 0) {
      const auto* data = static_cast<const uint8_t*>(zmq_msg_data(&msg));
      const size_t size = zmq_msg_size(&msg);
      wire::FrameType type;
      std::string error;
      if (!wire::PeekHeader(data, size, &type, &error)) continue;
      // Answers about earlier requests (timed out) have seqs below first_seq.
      auto index = [&](uint64_t seq, size_t* i) {
        if (seq < call->first_seq || seq >= call->first_seq + n) return false;
        *i = static_cast<size_t>(seq - call->first_seq);
        return true;
      };
      switch (type) {
        case wire::FrameType::kAck: {
          wire::Ack a;
          if (!wire::DecodeAck(data, size, &a, &error)) break;
          for (auto& r : a.routed) {
            size_t i;
            if (index(r.seq, &i)) {
              call->states[i].has_routed = true;
              call->states[i].routed = std::move(r.destinations);
            }
          }
          for (const auto& r : a.ranges) {
            for (uint64_t seq = std::max(r.first, call->first_seq);
                 seq <= r.last && seq < call->first_seq + n; ++seq) {
              size_t i = static_cast<size_t>(seq - call->first_seq);
              InprocCall::State& s = call->states[i];
              if (s.state != InprocCall::State::kPending) continue;
              if (call->events.events[i].ack == AckLevel::kDelivered) {
                s.state = InprocCall::State::kAccepted;
              } else {
                settle(i, AckLevel::kAccepted);
              }
            }
          }
          break;
        }
        case wire::FrameType::kNack: {
          wire::Nack nk;
          if (!wire::DecodeNack(data, size, &nk, &error)) break;
          if (nk.code == wire::kCodeHelloRequired) {
            // Ingest forgot this client while it was idle: hello, then the
            // events again (those it took are acked again, not doubled).
            if (nk.range.last >= call->first_seq) rehello = true;
            break;
          }
          for (uint64_t seq = std::max(nk.range.first, call->first_seq);
               seq <= nk.range.last && seq < call->first_seq + n; ++seq) {
            fail(static_cast<size_t>(seq - call->first_seq),
                 nk.code == wire::kCodeInvalidPayload || nk.code == wire::kCodeUnknownDestination ||
                         nk.code == wire::kCodeTooLarge || nk.code == wire::kCodeBackpressure ||
                         nk.code == wire::kCodeUnavailable
                     ? nk.code.c_str()
                     : wire::kCodeRejected,
                 nk.message);
            // fail() keeps a copy of the code string.
          }
          break;
        }
        case wire::FrameType::kDelivered: {
          wire::Delivered d;
          if (!wire::DecodeDelivered(data, size, &d, &error)) break;
          std::unordered_map<uint64_t, std::vector<wire::DestinationOutcome>*> trailer;
          for (auto& o : d.outcomes) trailer[o.seq] = &o.outcomes;
          for (const auto& r : d.ranges) {
            for (uint64_t seq = std::max(r.first, call->first_seq);
                 seq <= r.last && seq < call->first_seq + n; ++seq) {
              size_t i = static_cast<size_t>(seq - call->first_seq);
              InprocCall::State& s = call->states[i];
              if (s.state != InprocCall::State::kAccepted && s.state != InprocCall::State::kPending) continue;
              s.outcomes_known = true;
              auto it = trailer.find(seq);
              if (it != trailer.end()) s.outcomes = std::move(*it->second);
              const wire::DestinationOutcome* bad = nullptr;
              for (const auto& o : s.outcomes) {
                if (o.kind != wire::OutcomeKind::kFiltered) {
                  bad = &o;
                  break;
                }
              }
              if (bad != nullptr) {
                fail(i, wire::kCodeRejected, wire::DescribeOutcome(*bad));
              } else {
                settle(i, AckLevel::kDelivered);
              }
            }
          }
          break;
        }
        default:
          break;
      }
    }
    zmq_msg_close(&msg);
  }
}

}  // namespace forkd::ingest
