// How `forkd verify` decides that a value in a store is the value forkd
// wrote. Stores give back their own spelling of a value: SQLite 1 for true,
// PostgreSQL t and jsonb with its keys reordered, ClickHouse a timestamp
// with a space for the T. A cell matches when it is the same text, or the
// same number, boolean, instant or JSON document in another spelling.
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace forkd::verify {

// `expected` is forkd's text of the value (sinks::CellText), nullopt for
// null; `stored` the store's text of it, nullopt for NULL.
bool SameCell(const std::optional<std::string>& expected, const std::optional<std::string_view>& stored);

// The canonical text of a JSON document: object keys sorted, no white
// space, numbers in their shortest round-trip form. nullopt when `text` is
// not JSON.
std::optional<std::string> CanonicalJson(std::string_view text);

// Milliseconds since the epoch of an ISO-8601 / SQL timestamp in UTC
// ("2026-12-05T01:02:03.456Z", "2026-12-05 01:02:03.456+00", "2026-12-05
// 01:02:03"); nullopt when it is not one.
std::optional<int64_t> ParseInstantMs(std::string_view text);

}  // namespace forkd::verify
