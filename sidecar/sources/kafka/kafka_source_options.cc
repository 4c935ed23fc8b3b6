#include "sources/kafka/kafka_source_options.h"

#include "kafka/kafka_conf.h"
#include "sources/kafka/kafka_source.h"

namespace forkd::sources {

const std::vector<OptionSpec>& KafkaSourceOptions() {
  static const std::vector<OptionSpec> specs = {
      {"brokers", OptType::kString, "",
       "Bootstrap brokers: a comma-separated list of host:port (`kafka-1:9092,kafka-2:9092`)",
       true},
      {"topic", OptType::kString, "", "The topic read", true},
      {"group", OptType::kString, "",
       "The consumer group id: its committed offsets say where reading resumes", true},
      {"start", OptType::kEnum, "earliest",
       "Where a group with no committed offset starts: the oldest message kept, or only "
       "messages produced from now on",
       false, {"earliest", "latest"}},
      {"options", OptType::kNode, "",
       "librdkafka consumer properties, name: value (`session.timeout.ms: 6000` for a faster "
       "takeover when a member dies; security.protocol, sasl.* and ssl.* for SASL and TLS). "
       "`forkd check` asks librdkafka about each. Fork sets group.id, auto.offset.reset and "
       "enable.auto.offset.store itself (an offset is stored once its event is durable); its "
       "defaults are enable.auto.commit: true, auto.commit.interval.ms: 1000"},
  };
  return specs;
}

bool CheckKafkaSourceOptions(const Options& o, std::string* error) {
  std::string why;
  if (!kafka::CheckBrokers(o.Str("brokers"), &why)) {
    *error = "brokers: " + why;
    return false;
  }
  if (o.Str("group").empty()) {
    *error = "group: the consumer group id must not be empty";
    return false;
  }
  kafka::Properties props;
  if (!kafka::ReadProperties(o.Node("options"), KafkaSourceReserved(), &props, error)) return false;
  return kafka::CheckProperties(o.Str("brokers"), props, error);
}

}  // namespace forkd::sources
