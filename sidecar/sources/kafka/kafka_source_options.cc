#include "sources/kafka/kafka_source_options.h"

#include <algorithm>
#include <cctype>

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
       "librdkafka properties passed through as they are (`{ \"fetch.min.bytes\": 1 }`): a "
       "map of string values; empty by default"},
  };
  return specs;
}

bool CheckKafkaSourceOptions(const Options& o, std::string* error) {
  const std::string& brokers = o.Str("brokers");
  size_t i = 0;
  while (i <= brokers.size()) {
    size_t j = brokers.find(',', i);
    if (j == std::string::npos) j = brokers.size();
    std::string b = brokers.substr(i, j - i);
    b.erase(0, b.find_first_not_of(' '));
    b.erase(b.find_last_not_of(' ') + 1);
    const size_t colon = b.rfind(':');
    const std::string port = colon == std::string::npos ? "" : b.substr(colon + 1);
    if (colon == std::string::npos || colon == 0 || port.empty() || port.size() > 5 ||
        !std::all_of(port.begin(), port.end(), [](unsigned char c) { return std::isdigit(c); })) {
      *error = "brokers: expected a comma-separated list of host:port, got '" + b + "'";
      return false;
    }
    i = j + 1;
  }
  if (const YAML::Node& n = o.Node("options"); n.IsDefined() && !n.IsNull()) {
    if (!n.IsMap()) {
      *error = "options: expected a map of librdkafka properties";
      return false;
    }
    for (auto kv = n.begin(); kv != n.end(); ++kv) {
      if (!kv->second.IsScalar()) {
        *error = "options." + kv->first.Scalar() + ": expected a string value";
        return false;
      }
    }
  }
  return true;
}

}  // namespace forkd::sources
