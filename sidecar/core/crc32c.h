// CRC32C (Castagnoli), as used by LevelDB's log. Hardware (SSE4.2) when the
// CPU has it, a slicing table otherwise.
#pragma once

#include <cstddef>
#include <cstdint>

namespace forkd::crc32c {

// Returns the crc32c of concat(A, data[0,n-1]) where init_crc is the crc32c of A.
uint32_t Extend(uint32_t init_crc, const void* data, size_t n);
inline uint32_t Value(const void* data, size_t n) { return Extend(0, data, n); }

// A stored CRC of data that itself contains CRCs is masked, as in LevelDB, so
// that a CRC over a CRC does not degenerate.
inline constexpr uint32_t kMaskDelta = 0xa282ead8ul;
inline uint32_t Mask(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + kMaskDelta; }
inline uint32_t Unmask(uint32_t masked) {
  uint32_t rot = masked - kMaskDelta;
  return ((rot >> 17) | (rot << 15));
}

}  // namespace forkd::crc32c
