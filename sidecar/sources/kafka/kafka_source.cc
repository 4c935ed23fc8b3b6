#include "sources/kafka/kafka_source.h"

#include <pthread.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>

#include "config/config.h"
#include "core/clock.h"
#include "ingest/http/json_events.h"
#include "ingest/inproc_client.h"
#include "wire/protocol.h"

namespace forkd::sources {

namespace {

constexpr size_t kBatchMessages = 2000;  // messages per call to ingest, at most
constexpr int kGatherMs = 20;            // how long a batch gathers once it has one
constexpr int64_t kRouteTimeoutMs = 10000;
constexpr int64_t kHelloTimeoutMs = 2000;
constexpr const char* kAgent = "forkd/kafka-source";

int64_t NowMs() { return MonoMicros() / 1000; }

// Codes after which sending the same event again cannot succeed.
bool Permanent(const std::string& code) {
  return code == wire::kCodeInvalidPayload || code == wire::kCodeTooLarge ||
         code == wire::kCodeUnknownDestination;
}

}  // namespace

const kafka::Properties& KafkaSourceReserved() {
  static const kafka::Properties r = {
      {"bootstrap.servers", "set `brokers` instead"},
      {"metadata.broker.list", "set `brokers` instead"},
      {"group.id", "set `group` instead"},
      {"enable.auto.offset.store", "Fork stores an offset only once its event is durable in the log"},
      {"auto.offset.reset", "set `start` instead (earliest or latest)"},
  };
  return r;
}

void SplitForkId(std::string_view value, std::string_view* rest, std::string* id) {
  id->clear();
  *rest = value;
  static constexpr std::string_view kPrefix = "{\"_fork_id\":\"";
  if (value.substr(0, kPrefix.size()) != kPrefix) return;
  size_t i = kPrefix.size();
  while (i < value.size() && value[i] != '"') {
    if (value[i] == '\\') return;  // an escaped id: not one Fork wrote; left as it is
    ++i;
  }
  if (i >= value.size()) return;
  std::string found(value.substr(kPrefix.size(), i - kPrefix.size()));
  ++i;
  if (i < value.size() && value[i] == ',') {
    // {"_fork_id":"x",...} -> {...}: the comma becomes the opening brace.
    *rest = value.substr(i);
  } else if (i < value.size() && value[i] == '}') {
    *rest = "{}";
  } else {
    return;
  }
  *id = std::move(found);
}

std::unique_ptr<Source> CreateKafkaSource(const SourceContext& ctx) {
  const Options& o = ctx.source->options;
  KafkaSource::Settings s;
  s.name = ctx.source->name;
  s.brokers = o.Str("brokers");
  s.topic = o.Str("topic");
  s.group = o.Str("group");
  s.from_earliest = o.Str("start") != "latest";
  s.to = ctx.source->to;
  std::string error;
  if (!kafka::ReadProperties(o.Node("options"), KafkaSourceReserved(), &s.properties, &error)) {
    s.error = error;
  }
  s.instance = ctx.config->instance;
  s.zmq_ctx = ctx.zmq_ctx;
  s.endpoint = ctx.endpoint;
  s.max_event = static_cast<size_t>(ctx.config->max_event);
  s.max_frame = static_cast<size_t>(ctx.config->max_frame);
  return std::make_unique<KafkaSource>(std::move(s));
}

KafkaSource::KafkaSource(Settings s) : s_(std::move(s)) {}

void KafkaSource::Metrics(std::vector<SourceMetric>* out) const {
  const auto count = [](const std::atomic<uint64_t>& a) { return static_cast<double>(a.load(std::memory_order_relaxed)); };
  out->push_back({"fork_source_consumed_total", "counter", "Messages read from the source", count(stats_.consumed)});
  out->push_back({"fork_source_ingested_total", "counter",
                  "Events taken into the log from the source (durable; duplicates included)", count(stats_.ingested)});
  out->push_back({"fork_source_rejected_total", "counter",
                  "Messages ingest refused for good (not a JSON object, too large ...), passed over", count(stats_.rejected)});
  out->push_back({"fork_source_retries_total", "counter", "Batches sent to ingest again (backpressure, timeout)",
                  count(stats_.retries)});
  out->push_back({"fork_source_kafka_assigned_partitions", "gauge", "Kafka sources: partitions this member holds",
                  static_cast<double>(stats_.assigned_partitions.load(std::memory_order_relaxed))});
  out->push_back({"fork_source_kafka_lag_messages", "gauge",
                  "Kafka sources: messages behind the high watermarks of the held partitions (-1: unknown)",
                  static_cast<double>(stats_.lag_messages.load(std::memory_order_relaxed))});
}

KafkaSource::~KafkaSource() { Stop(); }

std::string KafkaSource::last_error() const {
  std::lock_guard<std::mutex> lock(error_mu_);
  return last_error_;
}

void KafkaSource::SetError(std::string e) {
  std::lock_guard<std::mutex> lock(error_mu_);
  last_error_ = std::move(e);
}

namespace {

void OnRebalance(rd_kafka_t* rk, rd_kafka_resp_err_t err, rd_kafka_topic_partition_list_t* parts,
                 void* opaque) {
  auto* stats = static_cast<KafkaSourceStats*>(opaque);
  const bool cooperative = std::string_view(rd_kafka_rebalance_protocol(rk)) == "COOPERATIVE";
  if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
    spdlog::info("{}: assigned {} partition(s)", rd_kafka_name(rk), parts->cnt);
    if (cooperative) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_assign(rk, parts)) rd_kafka_error_destroy(e);
      stats->assigned_partitions.fetch_add(parts->cnt);
    } else {
      rd_kafka_assign(rk, parts);
      stats->assigned_partitions.store(parts->cnt);
    }
  } else {
    spdlog::info("{}: {} partition(s) revoked", rd_kafka_name(rk), parts->cnt);
    // Stored offsets (of events durable in the log) are committed now, before
    // another member takes the partitions.
    rd_kafka_commit(rk, nullptr, 0);
    if (cooperative) {
      if (rd_kafka_error_t* e = rd_kafka_incremental_unassign(rk, parts)) rd_kafka_error_destroy(e);
      stats->assigned_partitions.fetch_sub(parts->cnt);
    } else {
      rd_kafka_assign(rk, nullptr);
      stats->assigned_partitions.store(0);
    }
  }
}

}  // namespace

Status KafkaSource::Start() {
  if (!s_.error.empty()) return Status::Fatal("source " + s_.name + ": " + s_.error);
  kafka::Properties defaults = {
      {"client.id", "forkd-" + (s_.instance.empty() ? std::string("forkd") : s_.instance) + "-" + s_.name},
      {"enable.auto.commit", "true"},
      {"auto.commit.interval.ms", "1000"},
      {"enable.partition.eof", "false"},
  };
  kafka::Properties forced = {
      {"group.id", s_.group},
      {"enable.auto.offset.store", "false"},
      {"auto.offset.reset", s_.from_earliest ? "earliest" : "latest"},
  };
  std::string error;
  rd_kafka_conf_t* conf = kafka::NewConf(s_.brokers, defaults, s_.properties, forced, &error);
  if (conf == nullptr) return Status::Fatal("source " + s_.name + ": " + error);
  rd_kafka_conf_set_opaque(conf, &stats_);
  rd_kafka_conf_set_rebalance_cb(conf, &OnRebalance);
  kafka::RouteLogs(conf);
  char errstr[512];
  rk_ = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
  if (rk_ == nullptr) {
    rd_kafka_conf_destroy(conf);
    return Status::Fatal("source " + s_.name + ": cannot create the Kafka consumer: " + errstr);
  }
  rd_kafka_poll_set_consumer(rk_);
  rd_kafka_topic_partition_list_t* topics = rd_kafka_topic_partition_list_new(1);
  rd_kafka_topic_partition_list_add(topics, s_.topic.c_str(), RD_KAFKA_PARTITION_UA);
  const rd_kafka_resp_err_t err = rd_kafka_subscribe(rk_, topics);
  rd_kafka_topic_partition_list_destroy(topics);
  if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
    return Status::Fatal("source " + s_.name + ": cannot subscribe to " + s_.topic + ": " +
                         rd_kafka_err2str(err));
  }
  thread_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "fork/kafka-in");
    Run();
  });
  spdlog::info("source {}: consuming {} as group {} from {}", s_.name, s_.topic, s_.group, s_.brokers);
  return Status::Ok();
}

void KafkaSource::Stop() {
  stopping_.store(true);
  if (thread_.joinable()) thread_.join();
  if (rk_ != nullptr) {
    // Leaves the group, committing the stored offsets.
    rd_kafka_consumer_close(rk_);
    rd_kafka_destroy(rk_);
    rk_ = nullptr;
  }
}

void KafkaSource::UpdateLag() {
  // From librdkafka's cached high watermarks (fetch responses carry them):
  // no request to the broker.
  rd_kafka_topic_partition_list_t* parts = nullptr;
  if (rd_kafka_assignment(rk_, &parts) != RD_KAFKA_RESP_ERR_NO_ERROR || parts == nullptr) return;
  int64_t lag = 0;
  bool known = false;  // some partition has fetched: its high watermark is known
  if (rd_kafka_position(rk_, parts) == RD_KAFKA_RESP_ERR_NO_ERROR) {
    for (int i = 0; i < parts->cnt; ++i) {
      int64_t lo = 0, hi = 0;
      const auto& p = parts->elems[i];
      if (rd_kafka_get_watermark_offsets(rk_, p.topic, p.partition, &lo, &hi) != RD_KAFKA_RESP_ERR_NO_ERROR ||
          hi < 0 || p.offset < 0) {
        continue;  // nothing fetched from it yet
      }
      known = true;
      lag += std::max<int64_t>(0, hi - p.offset);
    }
  }
  rd_kafka_topic_partition_list_destroy(parts);
  stats_.lag_messages.store(known ? lag : -1, std::memory_order_relaxed);
}

void KafkaSource::Run() {
  std::unique_ptr<ingest::InprocClient> client;
  std::vector<rd_kafka_message_t*> batch;
  ingest::http::Events one;
  ingest::http::EventLimits limits;
  limits.max_event = s_.max_event;
  limits.max_events = 1;
  std::string body, id;
  std::string to_json;
  for (size_t i = 0; i < s_.to.size(); ++i) {
    to_json += i == 0 ? "[" : ",";
    ingest::http::AppendJsonString(s_.to[i], &to_json);
  }
  if (!to_json.empty()) to_json += "]";
  ingest::RouteSettings rs;
  rs.agent = kAgent;
  rs.max_frame = s_.max_frame;
  rs.timeout_ms = kRouteTimeoutMs;
  int64_t lag_at = 0;

  while (!stopping_.load()) {
    if (NowMs() - lag_at >= 1000) {
      lag_at = NowMs();
      UpdateLag();
    }
    // Gather: wait up to 200 ms for a first message, then up to kGatherMs
    // more for others.
    batch.clear();
    int64_t gather_until = 0;
    while (batch.size() < kBatchMessages && !stopping_.load()) {
      const int64_t now = NowMs();
      const int wait = gather_until == 0 ? 200 : static_cast<int>(std::max<int64_t>(0, gather_until - now));
      if (gather_until != 0 && wait == 0) break;
      rd_kafka_message_t* m = rd_kafka_consumer_poll(rk_, wait);
      if (m == nullptr) {
        if (gather_until == 0) break;
        continue;
      }
      if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF) {
          const std::string e = std::string(rd_kafka_err2name(m->err)) + ": " + rd_kafka_message_errstr(m);
          spdlog::warn("source {}: {}", s_.name, e);
          SetError(e);
        }
        rd_kafka_message_destroy(m);
        continue;
      }
      batch.push_back(m);
      if (gather_until == 0) gather_until = NowMs() + kGatherMs;
    }
    if (batch.empty()) continue;
    stats_.consumed.fetch_add(batch.size(), std::memory_order_relaxed);

    // Each message as one event of the call; those ingest can never take are
    // passed over here already.
    ingest::InprocCall call;
    std::vector<size_t> of_event;  // event index -> batch index
    std::vector<bool> settled(batch.size(), false);
    for (size_t i = 0; i < batch.size(); ++i) {
      rd_kafka_message_t* m = batch[i];
      const std::string_view value(static_cast<const char*>(m->payload), m->payload ? m->len : 0);
      std::string_view payload;
      SplitForkId(value, &payload, &id);
      rd_kafka_headers_t* hdrs = nullptr;
      const void* hv = nullptr;
      size_t hsize = 0;
      if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          rd_kafka_header_get_last(hdrs, "fork-id", &hv, &hsize) == RD_KAFKA_RESP_ERR_NO_ERROR &&
          hv != nullptr && hsize > 0) {
        id.assign(static_cast<const char*>(hv), hsize);
      }
      if (id.empty()) {
        id = "kafka:" + s_.topic + ":" + std::to_string(m->partition) + ":" + std::to_string(m->offset);
      }
      body.clear();
      body += "{\"payload\":";
      if (payload.size() > 1 && payload[0] == ',') {
        body += '{';
        body.append(payload.substr(1));
      } else {
        body.append(payload);
      }
      if (!to_json.empty()) body += ",\"destination\":" + to_json;
      body += ",\"options\":{\"idempotencyKey\":";
      ingest::http::AppendJsonString(id, &body);
      body += "}}";
      ingest::http::BodyError berr;
      if (!ingest::http::ParseEvents(body, ingest::http::BodyFormat::kJson, limits, &one, &berr)) {
        stats_.rejected.fetch_add(1, std::memory_order_relaxed);
        const std::string e = "message at " + s_.topic + "/" + std::to_string(m->partition) + "@" +
                              std::to_string(m->offset) + " passed over: " + berr.message +
                              (berr.path.empty() ? "" : " (at " + berr.path + ")");
        spdlog::warn("source {}: {}", s_.name, e);
        SetError(e);
        settled[i] = true;
        continue;
      }
      ingest::http::Event ev = one.events[0];
      ev.offset = call.events.wire.size();
      call.events.wire.Append(one.wire.data() + one.events[0].offset, one.events[0].size);
      call.events.events.push_back(std::move(ev));
      of_event.push_back(i);
    }

    // Until ingest has taken every event (or refused it for good).
    while (!call.events.events.empty()) {
      if (!client) {
        std::string error;
        client = ingest::OpenInprocClient(s_.zmq_ctx, s_.endpoint, &error);
        if (!client) {
          SetError(error);
          std::this_thread::sleep_for(std::chrono::milliseconds(200));
          if (stopping_.load()) break;
          continue;
        }
      }
      if (!client->ready) {
        std::string error;
        if (!ingest::Hello(client.get(), kAgent, NowMs() + kHelloTimeoutMs, &error)) {
          SetError(error);
          client.reset();
          if (stopping_.load()) break;
          continue;
        }
      }
      call.states.clear();
      call.open = 0;
      ingest::Route(client.get(), &call, rs, stopping_);
      ingest::InprocCall again;
      std::vector<size_t> again_of;
      std::string retry_why;
      for (size_t e = 0; e < call.events.events.size(); ++e) {
        const auto& st = call.states[e];
        const size_t i = of_event[e];
        if (st.state == ingest::InprocCall::State::kDone) {
          settled[i] = true;
          stats_.ingested.fetch_add(1, std::memory_order_relaxed);
        } else if (st.state == ingest::InprocCall::State::kFailed && Permanent(st.code)) {
          settled[i] = true;
          stats_.rejected.fetch_add(1, std::memory_order_relaxed);
          const std::string msg = "message at " + s_.topic + "/" + std::to_string(batch[i]->partition) + "@" +
                                  std::to_string(batch[i]->offset) + " passed over: " + st.code + ": " + st.message;
          spdlog::warn("source {}: {}", s_.name, msg);
          SetError(msg);
        } else {
          // Backpressure, a timeout, forkd stopping: sent again.
          if (retry_why.empty()) retry_why = st.code + ": " + st.message;
          const auto& ev = call.events.events[e];
          ingest::http::Event copy = ev;
          copy.offset = again.events.wire.size();
          again.events.wire.Append(call.events.wire.data() + ev.offset, ev.size);
          again.events.events.push_back(std::move(copy));
          again_of.push_back(i);
        }
      }
      if (again.events.events.empty()) break;
      stats_.retries.fetch_add(1, std::memory_order_relaxed);
      SetError("ingest did not take " + std::to_string(again.events.events.size()) +
               " event(s), sending them again: " + retry_why);
      call = std::move(again);
      of_event = std::move(again_of);
      if (stopping_.load()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }

    // Offsets of what is durable (or passed over) are stored for the commit,
    // in order per partition: an offset is stored only when every message
    // before it in the batch from that partition is settled.
    std::vector<std::pair<int32_t, bool>> blocked;  // partition -> a message before was not settled
    for (size_t i = 0; i < batch.size(); ++i) {
      rd_kafka_message_t* m = batch[i];
      auto it = std::find_if(blocked.begin(), blocked.end(), [&](const auto& b) { return b.first == m->partition; });
      if (it == blocked.end()) {
        blocked.emplace_back(m->partition, false);
        it = blocked.end() - 1;
      }
      if (!settled[i]) it->second = true;
      if (!it->second) {
        rd_kafka_topic_partition_list_t* off = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(off, rd_kafka_topic_name(m->rkt), m->partition)->offset = m->offset + 1;
        rd_kafka_offsets_store(rk_, off);  // fails for a partition revoked meanwhile: its new owner reads it again
        rd_kafka_topic_partition_list_destroy(off);
      }
      rd_kafka_message_destroy(m);
    }
    batch.clear();
  }
}

}  // namespace forkd::sources
