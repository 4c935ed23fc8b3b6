// The `kafka` source's options: a consumer group reading one topic. Only
// the table and its check live here so far; the consumer comes later.
#pragma once

#include <string>
#include <vector>

#include "core/options.h"

namespace forkd::sources {

const std::vector<OptionSpec>& KafkaSourceOptions();
// Beyond the table: brokers is a list of host:port, options a map of
// scalars. The error starts with the option it is about.
bool CheckKafkaSourceOptions(const Options& o, std::string* error);

}  // namespace forkd::sources
