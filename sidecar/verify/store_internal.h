// The store readers' constructors, one per store (verify/store.h).
#pragma once

#include <unistd.h>

#include "verify/store.h"

namespace forkd::verify {

std::unique_ptr<StoreReader> NewSqliteStore(const Config& config, const DestinationConfig& d, std::string* why);
std::unique_ptr<StoreReader> NewPostgresStore(const Config& config, const DestinationConfig& d, std::string* why);
std::unique_ptr<StoreReader> NewClickHouseStore(const Config& config, const DestinationConfig& d, std::string* why);
std::unique_ptr<StoreReader> NewFileStore(const Config& config, const DestinationConfig& d, std::string* why);

}  // namespace forkd::verify
