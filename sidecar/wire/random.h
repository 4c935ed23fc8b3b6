// Random bytes from the kernel (getrandom(2)), for ids and jitter: unlike
// std::random_device, which some C++ runtimes (LLVM's libc++, in the static
// prebuilt binaries) implement by opening /dev/urandom, it needs no file, so
// forkd also runs where /dev is empty (a bare chroot, a scratch image).
#pragma once

#include <sys/random.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <cstdlib>

namespace forkd::wire {

inline void FillRandom(void* buf, size_t n) {
  auto* p = static_cast<unsigned char*>(buf);
  while (n > 0) {
    const ssize_t got = ::getrandom(p, n, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      std::abort();  // ENOSYS on a kernel older than 3.17: nothing safe to fall back to
    }
    p += got;
    n -= static_cast<size_t>(got);
  }
}

inline uint64_t RandomU64() {
  uint64_t v;
  FillRandom(&v, sizeof v);
  return v;
}

}  // namespace forkd::wire
