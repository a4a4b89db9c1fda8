// SPDX-License-Identifier: BSL-1.0
#include "io/curl_limits.hpp"

#include <dirent.h>
#include <sys/resource.h>

#include <algorithm>

#include "concur/http.hpp"

namespace concur::io {

namespace {

std::size_t open_descriptors() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 64;  // no procfs: assume a modest number
  std::size_t n = 0;
  while (const dirent* e = readdir(dir)) {
    if (e->d_name[0] != '.') ++n;
  }
  closedir(dir);
  return n;
}

}  // namespace

std::size_t transfer_budget() {
  constexpr std::size_t kReserve = 64;  // for files, pipes, the executor's own descriptors
  constexpr std::size_t kMinimum = 4;
  rlimit lim{};
  if (getrlimit(RLIMIT_NOFILE, &lim) != 0 || lim.rlim_cur == RLIM_INFINITY) return 1u << 16;
  const auto limit = static_cast<std::size_t>(lim.rlim_cur);
  const std::size_t used = open_descriptors();
  const std::size_t free = limit > used ? limit - used : 0;
  return std::max(kMinimum, free / 2 > kReserve ? free / 2 - kReserve : 0);
}

}  // namespace concur::io

namespace concur::http {
std::size_t max_in_flight() { return io::transfer_budget(); }
}  // namespace concur::http
