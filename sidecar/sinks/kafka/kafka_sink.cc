#include "sinks/kafka/kafka_sink.h"

#include <spdlog/spdlog.h>

#include <algorithm>

#include "core/clock.h"
#include "sinks/common/json.h"

namespace forkd::sinks {

namespace {

// Properties Fork sets itself: refused under `options:`.
const kafka::Properties& Reserved() {
  static const kafka::Properties r = {
      {"bootstrap.servers", "set `brokers` instead"},
      {"metadata.broker.list", "set `brokers` instead"},
      {"enable.idempotence", "the kafka destination is always idempotent (enable.idempotence=true)"},
      {"acks", "the kafka destination always waits for every in-sync replica (acks=all)"},
      {"request.required.acks", "the kafka destination always waits for every in-sync replica (acks=all)"},
      {"transactional.id", "transactions are not supported; delivery is at least once, deduped on fork-id"},
  };
  return r;
}

// What librdkafka gets before the user's properties, which may change them.
const kafka::Properties& Defaults() {
  static const kafka::Properties d = {
      // Java's partitioner: one key lands in the same partition whichever
      // client wrote it.
      {"partitioner", "murmur2_random"},
      // A message librdkafka cannot deliver is reported after 30 s (its
      // default is 5 min); the pipeline then retries it with its backoff.
      {"message.timeout.ms", "30000"},
      {"linger.ms", "5"},
  };
  return d;
}

const kafka::Properties& Forced() {
  static const kafka::Properties f = {
      {"enable.idempotence", "true"},
      {"acks", "all"},
  };
  return f;
}

}  // namespace

const std::vector<OptionSpec>& KafkaSinkOptions() {
  static const std::vector<OptionSpec> specs = {
      {"brokers", OptType::kString, "",
       "Bootstrap brokers, host:port[,host:port...]. TLS and SASL are librdkafka properties under "
       "`options` (security.protocol, sasl.mechanism, sasl.username ...)",
       true},
      {"topic", OptType::kString, "", "The topic written to; it must exist (or the broker create it)",
       true},
      {"key", OptType::kString, "",
       "A field path (`orderId`, `user.id`) whose value is the message key: one key's records go "
       "to one partition, in order. A record without the field is sent without a key"},
      {"headers", OptType::kNode, "",
       "Extra message headers, a map of name: value (${ENV} allowed). Every message also carries "
       "fork-id (the event id), fork-destination and fork-instance"},
      {"options", OptType::kNode, "",
       "librdkafka producer properties, name: value (e.g. compression.type: lz4, "
       "security.protocol: SASL_SSL). `forkd check` asks librdkafka about each. Fork sets "
       "enable.idempotence and acks=all itself; its defaults are partitioner: murmur2_random, "
       "message.timeout.ms: 30000, linger.ms: 5"},
      {"timeout", OptType::kDuration, "10s",
       "How long a flush waits for the broker to acknowledge its batch before answering retry "
       "(librdkafka keeps the messages and the next flush waits for them again)",
       false, {}, 100, 3600000},
  };
  return specs;
}

namespace {

bool ReadHeaders(const YAML::Node& node, std::vector<std::pair<std::string, std::string>>* out,
                 std::string* error) {
  out->clear();
  if (!node.IsDefined() || node.IsNull()) return true;
  if (!node.IsMap()) {
    *error = "headers: expected a map of name: value";
    return false;
  }
  for (auto it = node.begin(); it != node.end(); ++it) {
    const std::string name = it->first.Scalar();
    if (name.empty() || name.rfind("fork-", 0) == 0) {
      *error = "headers." + name + ": names starting with fork- are Fork's own";
      return false;
    }
    if (!it->second.IsScalar()) {
      *error = "headers." + name + ": expected a text value";
      return false;
    }
    std::string value, missing;
    if (!Interpolate(it->second.Scalar(), &value, &missing)) {
      *error = "headers." + name + ": ${" + missing + "} is not set";
      return false;
    }
    out->emplace_back(name, std::move(value));
  }
  return true;
}

bool ReadSettings(const Options& o, KafkaSink::Settings* s, std::string* error) {
  s->brokers = o.Str("brokers");
  s->topic = o.Str("topic");
  s->key = o.Str("key");
  s->timeout_ms = o.Millis("timeout");
  std::string why;
  if (!kafka::CheckBrokers(s->brokers, &why)) {
    *error = "brokers: " + why;
    return false;
  }
  if (s->topic.empty() || s->topic.size() > 249 ||
      !std::all_of(s->topic.begin(), s->topic.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == '-';
      })) {
    *error = "topic: a Kafka topic name is 1-249 of a-z A-Z 0-9 . _ -";
    return false;
  }
  if (!s->key.empty()) {
    transforms::Path p;
    if (!transforms::ParsePath(s->key, &p, &why)) {
      *error = "key: " + why;
      return false;
    }
  }
  if (!ReadHeaders(o.Node("headers"), &s->headers, error)) return false;
  if (!kafka::ReadProperties(o.Node("options"), Reserved(), &s->properties, error)) return false;
  return true;
}

}  // namespace

bool CheckKafkaOptions(const Options& o, std::string* error) {
  KafkaSink::Settings s;
  if (!ReadSettings(o, &s, error)) return false;
  kafka::Properties all = Defaults();
  all.insert(all.end(), s.properties.begin(), s.properties.end());
  return kafka::CheckProperties(s.brokers, all, error);
}

std::unique_ptr<Sink> CreateKafkaSink(const SinkContext& ctx) {
  KafkaSink::Settings s;
  std::string error;
  const bool ok = ReadSettings(ctx.destination->sink, &s, &error);
  s.destination = ctx.destination->name;
  s.instance = ctx.config != nullptr ? ctx.config->instance : "";
  s.client_id = "forkd-" + (s.instance.empty() ? std::string("forkd") : s.instance) + "-" + s.destination;
  if (!ok) s.error = std::move(error);  // Open reports it; `forkd check` catches it first
  return std::make_unique<KafkaSink>(std::move(s));
}

KafkaSink::KafkaSink(Settings s) : s_(std::move(s)) {
  error_ = s_.error;
  if (!error_.empty()) return;
  std::string why;
  if (!s_.key.empty() && !transforms::ParsePath(s_.key, &key_path_, &why)) error_ = "key: " + why;
}

KafkaSink::~KafkaSink() { Close(); }

void KafkaSink::OnDelivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
  static_cast<KafkaSink*>(opaque)->Delivered(m);
}

void KafkaSink::OnError(rd_kafka_t*, int err, const char* reason, void* opaque) {
  auto* self = static_cast<KafkaSink*>(opaque);
  self->last_error_ = std::string(rd_kafka_err2name(static_cast<rd_kafka_resp_err_t>(err))) + ": " + reason;
}

Status KafkaSink::Open(const std::string&) {
  if (!error_.empty()) return Status::Fatal(error_);
  opened_ = true;
  done_.clear();
  done_until_lsn_ = 0;
  // The client starts now (librdkafka connects in the background); a broker
  // that is down shows as retries at the first Flush.
  if (rk_ == nullptr) return Connect();
  return Status::Ok();
}

Status KafkaSink::Connect() {
  std::string error;
  kafka::Properties defaults = Defaults();
  defaults.emplace_back("client.id", s_.client_id);
  rd_kafka_conf_t* conf = kafka::NewConf(s_.brokers, defaults, s_.properties, Forced(), &error);
  if (conf == nullptr) return Status::Fatal(error);
  rd_kafka_conf_set_opaque(conf, this);
  rd_kafka_conf_set_dr_msg_cb(conf, &KafkaSink::OnDelivery);
  rd_kafka_conf_set_error_cb(conf, &KafkaSink::OnError);
  kafka::RouteLogs(conf);
  char errstr[512];
  rk_ = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::Fatal(std::string("cannot create the Kafka producer: ") + errstr);
  }
  // The topic's handle now: librdkafka asks for its metadata at once, rather
  // than at its next periodic scan (up to a second) after the first message.
  rkt_ = rd_kafka_topic_new(rk_, s_.topic.c_str(), nullptr);
  if (rkt_ == nullptr) {
    const std::string why = rd_kafka_err2str(rd_kafka_last_error());
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
    return Status::Fatal("topic " + s_.topic + ": " + why);
  }
  return Status::Ok();
}

void KafkaSink::Close() {
  if (rk_ == nullptr) return;
  // Whatever librdkafka still holds was never acknowledged, so the cursor
  // does not cover it: drop it rather than wait.
  rd_kafka_purge(rk_, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  rd_kafka_poll(rk_, 0);
  if (rkt_ != nullptr) rd_kafka_topic_destroy(rkt_);
  rkt_ = nullptr;
  rd_kafka_destroy(rk_);
  rk_ = nullptr;
  in_flight_.store(0);
  queued_.store(0);
}

KafkaSink::Message* KafkaSink::BySerial(uint64_t serial) {
  auto in = [serial](Batch& b) -> Message* {
    if (serial < b.first_serial || serial - b.first_serial >= b.msgs.size()) return nullptr;
    return &b.msgs[serial - b.first_serial];
  };
  if (Message* m = in(batch_)) return m;
  for (Flight& f : flights_) {
    if (Message* m = in(f.batch)) return m;
  }
  return nullptr;
}

void KafkaSink::Delivered(const rd_kafka_message_t* m) {
  in_flight_.fetch_sub(1, std::memory_order_relaxed);
  const auto serial = reinterpret_cast<uintptr_t>(m->_private);
  Message* msg = BySerial(serial);
  if (msg == nullptr || msg->state != State::kInFlight) return;  // from a discarded batch
  if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
    msg->state = State::kDone;
    return;
  }
  msg->error = "topic " + s_.topic + ": " + rd_kafka_err2name(m->err) + ": " + rd_kafka_err2str(m->err);
  msg->state = kafka::IsPermanent(m->err) ? State::kRefused : State::kRetry;
}

void KafkaSink::Write(const Record& r) {
  const uint64_t lsn = r.header != nullptr ? r.header->lsn : 0;
  if (done_until_lsn_ != 0 && lsn > done_until_lsn_) {
    done_.clear();
    done_until_lsn_ = 0;
  }
  if (!done_.empty() && done_.count(std::string(r.event_id)) != 0) return;  // the broker has it
  if (batch_.msgs.empty()) batch_.first_serial = next_serial_;
  std::string& a = batch_.arena;
  Message& m = batch_.msgs.emplace_back();
  m.serial = next_serial_++;
  m.lsn = lsn;
  m.id_off = static_cast<uint32_t>(a.size());
  a.append(r.event_id);
  m.id_len = static_cast<uint32_t>(r.event_id.size());
  m.key_off = static_cast<uint32_t>(a.size());
  if (!key_path_.segs.empty()) {
    doc_.Clear();
    doc_.Load(r.payload, r.payload_size);
    const transforms::RawValue v = doc_.Lookup(key_path_);
    if (v.found() && v.data[0] != 0xc0) {
      if ((v.data[0] >= 0x80 && v.data[0] <= 0x9f) || v.data[0] == 0xdc || v.data[0] == 0xdd ||
          v.data[0] == 0xde || v.data[0] == 0xdf) {
        AppendJson(v.data, &a);  // a map or an array: its JSON text
      } else {
        transforms::AppendText(v.data, &a);
      }
      m.has_key = true;
    }
  }
  m.key_len = static_cast<uint32_t>(a.size() - m.key_off);
  m.value_off = static_cast<uint32_t>(a.size());
  AppendJsonLine(r.event_id, r.payload, r.payload_size, &a);
  a.pop_back();  // the line's "\n"
  m.value_len = static_cast<uint32_t>(a.size() - m.value_off);
  bytes_ += m.id_len + m.key_len + m.value_len;
}

Status KafkaSink::Flush() {
  if (!opened_) return Status::Fatal("kafka sink flushed before Open");
  if (rk_ == nullptr) {
    if (Status st = Connect(); !st.ok()) return st;
  }
  Produce(&batch_);
  Status s = Answer(&batch_);
  if (s.ok()) Clear();
  return s;
}

Status KafkaSink::Send(uint64_t ticket) {
  if (!opened_) return Status::Fatal("kafka sink flushed before Open");
  if (rk_ == nullptr) {
    if (Status st = Connect(); !st.ok()) return st;
  }
  // Registered before librdkafka has it: its reports may come while the
  // rest is handed over.
  Flight& f = flights_.emplace_back();
  f.ticket = ticket;
  f.batch.first_serial = batch_.first_serial;
  f.batch.msgs.swap(batch_.msgs);
  f.batch.arena.swap(batch_.arena);
  if (!spare_.empty()) {  // the next batch in an earlier one's memory
    batch_.msgs.swap(spare_.back().msgs);
    batch_.arena.swap(spare_.back().arena);
    spare_.pop_back();
  }
  Clear();
  Produce(&f.batch);
  return Status::Ok();
}

Status KafkaSink::Await(uint64_t ticket) {
  for (auto it = flights_.begin(); it != flights_.end(); ++it) {
    if (it->ticket != ticket) continue;
    // The producer was replaced (a fatal error while an earlier batch was
    // awaited): what it held went with it.
    const Status s = rk_ != nullptr ? Answer(&it->batch)
                                    : Status::Retry("kafka producer: restarted while the batch was on its way");
    if (spare_.size() < 2) {
      it->batch.clear();
      spare_.push_back(std::move(it->batch));
    }
    flights_.erase(it);
    return s;
  }
  return Status::Fatal("kafka: no batch " + std::to_string(ticket) + " was sent");
}

void KafkaSink::Produce(Batch* batch) {
  // Hand every message not yet with librdkafka to it.
  for (Message& m : batch->msgs) {
    if (m.state != State::kToSend && m.state != State::kRetry) continue;
    const std::string_view id = batch->id(m), key = batch->key(m), value = batch->value(m);
    rd_kafka_headers_t* h = rd_kafka_headers_new(3 + s_.headers.size());
    rd_kafka_header_add(h, "fork-id", -1, id.data(), static_cast<ssize_t>(id.size()));
    rd_kafka_header_add(h, "fork-destination", -1, s_.destination.data(),
                        static_cast<ssize_t>(s_.destination.size()));
    if (!s_.instance.empty()) {
      rd_kafka_header_add(h, "fork-instance", -1, s_.instance.data(),
                          static_cast<ssize_t>(s_.instance.size()));
    }
    for (const auto& [k, v] : s_.headers) {
      rd_kafka_header_add(h, k.data(), static_cast<ssize_t>(k.size()), v.data(),
                          static_cast<ssize_t>(v.size()));
    }
    for (;;) {
      const rd_kafka_resp_err_t err = rd_kafka_producev(
          rk_, RD_KAFKA_V_RKT(rkt_), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
          RD_KAFKA_V_KEY(m.has_key ? key.data() : nullptr, m.has_key ? key.size() : 0),
          RD_KAFKA_V_VALUE(const_cast<char*>(value.data()), value.size()), RD_KAFKA_V_HEADERS(h),
          RD_KAFKA_V_OPAQUE(reinterpret_cast<void*>(static_cast<uintptr_t>(m.serial))),
          RD_KAFKA_V_END);
      if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        m.state = State::kInFlight;
        in_flight_.fetch_add(1, std::memory_order_relaxed);
        break;
      }
      if (err == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
        rd_kafka_poll(rk_, 10);  // serves delivery reports, making room
        continue;
      }
      rd_kafka_headers_destroy(h);
      m.error = "topic " + s_.topic + ": " + rd_kafka_err2name(err) + ": " + rd_kafka_err2str(err);
      m.state = kafka::IsPermanent(err) ? State::kRefused : State::kRetry;
      break;
    }
  }
}

Status KafkaSink::Answer(Batch* batch) {
  // Wait for the broker's answers.
  const int64_t deadline = MonoMicros() / 1000 + s_.timeout_ms;
  for (;;) {
    queued_.store(rd_kafka_outq_len(rk_), std::memory_order_relaxed);
    const bool waiting = std::any_of(batch->msgs.begin(), batch->msgs.end(),
                                     [](const Message& m) { return m.state == State::kInFlight; });
    if (!waiting) break;
    const int64_t left = deadline - MonoMicros() / 1000;
    if (left <= 0) break;
    rd_kafka_poll(rk_, static_cast<int>(std::min<int64_t>(left, 100)));
  }
  queued_.store(rd_kafka_outq_len(rk_), std::memory_order_relaxed);

  // A fatal error of the idempotent producer: it cannot go on; a new one
  // sends what was not acknowledged.
  char fatal[512];
  if (rd_kafka_fatal_error(rk_, fatal, sizeof fatal) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("destination {}: the Kafka producer failed ({}); starting a new one", s_.destination, fatal);
    for (Message& m : batch->msgs) {
      if (m.state == State::kInFlight) m.state = State::kRetry;
    }
    Close();
    return Status::Retry(std::string("kafka producer: ") + fatal);
  }

  size_t in_flight = 0, retry = 0, refused = 0;
  const Message* first_retry = nullptr;
  const Message* first_refused = nullptr;
  for (const Message& m : batch->msgs) {
    if (m.state == State::kInFlight) ++in_flight;
    if (m.state == State::kRetry && ++retry == 1) first_retry = &m;
    if (m.state == State::kRefused && ++refused == 1) first_refused = &m;
  }
  if (in_flight == 0 && retry == 0 && refused == 0) return Status::Ok();
  if (in_flight > 0 || retry > 0) {
    std::string why = in_flight > 0 ? std::to_string(in_flight) + " of " + std::to_string(batch->msgs.size()) +
                                          " messages not acknowledged by the broker within " +
                                          std::to_string(s_.timeout_ms) + " ms"
                                    : first_retry->error;
    if (in_flight > 0 && !last_error_.empty()) why += " (" + last_error_ + ")";
    return Status::Retry(std::move(why));
  }
  // Refused for good: what the broker took is never sent again while the
  // pipeline splits the batch down to the refused records.
  for (const Message& m : batch->msgs) {
    done_until_lsn_ = std::max(done_until_lsn_, m.lsn);
    if (m.state == State::kDone) done_.insert(std::string(batch->id(m)));
  }
  std::string error = first_refused->error;
  if (refused > 1) error += " (and " + std::to_string(refused - 1) + " more)";
  return Status::Fatal(std::move(error));
}

void KafkaSink::Clear() {
  batch_.clear();
  bytes_ = 0;
  batch_.first_serial = next_serial_;
}

void KafkaSink::Discard() {
  // Messages still with librdkafka keep their serials: their reports find
  // no message and are ignored.
  Clear();
}

void KafkaSink::Gauges(std::vector<Gauge>* out) const {
  out->push_back({"fork_destination_kafka_in_flight_messages",
                  "Kafka destinations: messages handed to librdkafka and not yet acknowledged",
                  static_cast<double>(in_flight_.load(std::memory_order_relaxed))});
  out->push_back({"fork_destination_kafka_queue_messages",
                  "Kafka destinations: librdkafka's out queue (messages and requests), rd_kafka_outq_len",
                  static_cast<double>(queued_.load(std::memory_order_relaxed))});
}

}  // namespace forkd::sinks
