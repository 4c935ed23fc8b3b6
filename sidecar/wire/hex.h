// Bytes as lowercase hexadecimal: client ids, digests, idempotency keys.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace forkd::wire {

inline constexpr char kHexDigits[] = "0123456789abcdef";

// Writes the 2 * n hex digits of p[0, n) to out (no terminator).
inline void HexTo(const uint8_t* p, size_t n, char* out) {
  for (size_t i = 0; i < n; ++i) {
    out[2 * i] = kHexDigits[p[i] >> 4];
    out[2 * i + 1] = kHexDigits[p[i] & 15];
  }
}

inline std::string Hex(const uint8_t* p, size_t n) {
  std::string s(2 * n, '\0');
  HexTo(p, n, s.data());
  return s;
}

}  // namespace forkd::wire
