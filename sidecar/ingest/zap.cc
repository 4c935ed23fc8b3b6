#include "ingest/zap.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdlib>

#include "ingest/curve_config.h"

namespace forkd::ingest {
namespace {

constexpr char kZapEndpoint[] = "inproc://zeromq.zap.01";
constexpr char kConnectionProperty[] = "X-Fork-Connection";

// A ZAP metadata entry: name-length:u8 name value-length:u32be value.
void AppendProperty(std::string* out, std::string_view name, std::string_view value) {
  out->push_back(static_cast<char>(name.size()));
  out->append(name);
  const auto n = static_cast<uint32_t>(value.size());
  const char len[4] = {static_cast<char>(n >> 24), static_cast<char>(n >> 16),
                       static_cast<char>(n >> 8), static_cast<char>(n)};
  out->append(len, 4);
  out->append(value);
}

}  // namespace

Peer PeerOf(zmq_msg_t* msg) {
  Peer p;
  if (const char* c = zmq_msg_gets(msg, kConnectionProperty)) {
    p.connection = std::strtoull(c, nullptr, 10);
  }
  if (const char* k = zmq_msg_gets(msg, "User-Id")) p.key = k;
  return p;
}

ZapHandler::ZapHandler(std::vector<std::string> allowed, std::atomic<uint64_t>* refused)
    : allowed_(std::move(allowed)), refused_(refused) {
  std::sort(allowed_.begin(), allowed_.end());
}

ZapHandler::~ZapHandler() { Stop(); }

Status ZapHandler::Start(void* ctx) {
  socket_ = zmq_socket(ctx, ZMQ_REP);
  if (socket_ == nullptr) {
    return Status::IoError(std::string("zap socket: ") + zmq_strerror(zmq_errno()));
  }
  const int linger = 0;
  zmq_setsockopt(socket_, ZMQ_LINGER, &linger, sizeof(linger));
  if (zmq_bind(socket_, kZapEndpoint) != 0) {
    const std::string why = zmq_strerror(zmq_errno());
    zmq_close(socket_);
    socket_ = nullptr;
    return Status::IoError(std::string("zap: cannot bind ") + kZapEndpoint + ": " + why);
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fork/zap");
    Run();
  });
  return Status::Ok();
}

void ZapHandler::Stop() {
  stop_.store(true);
  if (thread_.joinable()) thread_.join();
  if (socket_ != nullptr) {
    zmq_close(socket_);
    socket_ = nullptr;
  }
}

void ZapHandler::Run() {
  std::vector<std::string> request;
  zmq_pollitem_t item{socket_, 0, ZMQ_POLLIN, 0};
  while (!stop_.load()) {
    // A short timeout: Stop() only sets a flag.
    if (zmq_poll(&item, 1, 100) <= 0) continue;
    request.clear();
    bool more = true;
    while (more) {
      zmq_msg_t part;
      zmq_msg_init(&part);
      if (zmq_msg_recv(&part, socket_, 0) < 0) {
        zmq_msg_close(&part);
        break;
      }
      request.emplace_back(static_cast<const char*>(zmq_msg_data(&part)), zmq_msg_size(&part));
      more = zmq_msg_more(&part);
      zmq_msg_close(&part);
    }
    Answer(request);
  }
}

void ZapHandler::Answer(const std::vector<std::string>& request) {
  // version, request id, domain, address, routing id, mechanism, credentials*
  std::string status = "200", text = "OK", user_id, metadata;
  const std::string& address = request.size() > 3 ? request[3] : std::string();
  if (request.size() < 6 || request[0] != "1.0") {
    status = "500";
    text = "malformed ZAP request";
  } else if (request[5] == "CURVE") {
    if (request.size() < 7 || request[6].size() != 32) {
      status = "400";
      text = "no CURVE public key";
    } else {
      char z85[kCurveKeyTextSize + 1] = {};
      zmq_z85_encode(z85, reinterpret_cast<const uint8_t*>(request[6].data()), 32);
      user_id = z85;
      if (!allowed_.empty() && !std::binary_search(allowed_.begin(), allowed_.end(), user_id)) {
        status = "400";
        text = "client key not allowed";
        if (refused_ != nullptr) refused_->fetch_add(1, std::memory_order_relaxed);
        spdlog::warn("refused a client from {}: its CURVE public key {} is not in curve.clients",
                     address.empty() ? "an unknown address" : address, user_id);
      }
    }
  } else if (request[5] != "NULL") {
    status = "400";
    text = "mechanism " + request[5] + " is not used by forkd";
  }
  if (status == "200") {
    AppendProperty(&metadata, kConnectionProperty, std::to_string(next_connection_++));
  }
  const std::string& id = request.size() > 1 ? request[1] : std::string();
  const std::string* parts[] = {nullptr, &id, &status, &text, &user_id, &metadata};
  static const std::string kVersion = "1.0";
  parts[0] = &kVersion;
  for (size_t i = 0; i < 6; ++i) {
    zmq_send(socket_, parts[i]->data(), parts[i]->size(), i + 1 < 6 ? ZMQ_SNDMORE : 0);
  }
}

}  // namespace forkd::ingest
