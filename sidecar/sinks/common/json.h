// msgpack -> JSON, straight from the bytes. Strings are escaped per RFC 8259
// (invalid UTF-8 becomes U+FFFD), binary becomes base64, the timestamp
// extension an ISO-8601 UTC string, NaN and infinities null.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace forkd::sinks {

// Appends the JSON text of the msgpack value at `p` (trusted, validated
// bytes); returns the position after the value.
const uint8_t* AppendJson(const uint8_t* p, std::string* out);
// Appends one JSON Lines record: {"_fork_id": id, ...the payload map's
// fields}\n. A payload field named _fork_id is dropped: the id is forkd's.
void AppendJsonLine(std::string_view id, const uint8_t* payload, size_t payload_size,
                    std::string* out);
// Appends the map key at `p` as a JSON string (a key that is not a string
// becomes its JSON text); returns the position after the key.
const uint8_t* AppendJsonKey(const uint8_t* p, std::string* out);
// Appends `s` as a JSON string literal.
void AppendJsonString(std::string_view s, std::string* out);
// Appends a msgpack timestamp as "2026-11-21T17:50:00.123Z".
void AppendIsoTime(int64_t seconds, uint32_t nanos, std::string* out);
void AppendBase64(const uint8_t* p, size_t n, std::string* out);
// Appends a double in its shortest round-trip form, or null.
void AppendDouble(double d, std::string* out);

}  // namespace forkd::sinks
