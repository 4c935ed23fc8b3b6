// The `kafka` source's options: a consumer group reading one topic. The
// consumer is sources/kafka/kafka_source.h.
#pragma once

#include <string>
#include <vector>

#include "core/options.h"

namespace forkd::sources {

const std::vector<OptionSpec>& KafkaSourceOptions();
// Beyond the table: brokers is a list of host:port, and librdkafka takes
// every property under options (Fork's own refused). The error starts with
// the option it is about.
bool CheckKafkaSourceOptions(const Options& o, std::string* error);

}  // namespace forkd::sources
