// SPDX-License-Identifier: BSL-1.0
// concur-bench-fiber-memory: resident memory of 100,000 fibers sleeping 1 s,
// per stack_kb, each size in a fresh process (so one size's freed memory
// cannot hide the next one's).
//
//   concur-bench-fiber-memory [--fibers N] [--sleep-ms MS]   every size: 16, 32, 64, 256
//   concur-bench-fiber-memory --stack-kb K ...               one size
#include <fmt/format.h>

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "bench_support.hpp"

using concur::Task;
using concur::bench::arg;
using namespace std::chrono_literals;

namespace {

std::atomic<long> g_parked{0};

Task<int> parked_sleep(std::chrono::milliseconds d) {
  g_parked.fetch_add(1);
  co_await concur::sleep_for(d);
  co_return 1;
}

long status_kib(const char* key) {
  std::ifstream status("/proc/self/status");
  std::string line;
  const std::string k(key);
  while (std::getline(status, line)) {
    if (line.rfind(k, 0) == 0) return std::stol(line.substr(k.size()));
  }
  return -1;
}
long rss_kib() { return status_kib("VmRSS:"); }

int one_size(long fibers, long stack_kb, long sleep_ms) {
  concur::Config c;
  c.executor = "fibers";
  c.threads = 1;
  c.stack_kb = static_cast<std::size_t>(stack_kb);
  c.stall_threshold = 0ms;
  auto ex = concur::make_executor(c);
  std::vector<decltype(concur::call(parked_sleep, 1ms))> calls(
      static_cast<std::size_t>(fibers),
      concur::call(parked_sleep, std::chrono::milliseconds(sleep_ms)));
  const long rss0 = rss_kib();
  long peak = rss0;
  std::thread sampler([&] {
    while (g_parked.load() < fibers) std::this_thread::sleep_for(2ms);
    peak = rss_kib();
  });
  const auto out = ex->gather(calls);
  sampler.join();
  if (static_cast<long>(out.size()) != fibers) return 1;
  const long hwm = status_kib("VmHWM:");
  std::printf(
      "stack_kb %4ld: %ld fibers asleep: RSS +%ld MiB (%.1f KiB per fiber); process peak %ld MiB, "
      "%ld MiB after\n",
      stack_kb, fibers, (peak - rss0) / 1024, static_cast<double>(peak - rss0) / fibers, hwm / 1024,
      rss_kib() / 1024);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const long fibers = arg(argc, argv, "--fibers", 100'000);
  const long stack_kb = arg(argc, argv, "--stack-kb", 0);
  // Long enough that every fiber is parked before the first wakes, even on
  // a loaded machine; the peak then includes the wave of 100,000 wake-ups.
  const long sleep_ms = arg(argc, argv, "--sleep-ms", 1000);
  if (stack_kb > 0) return one_size(fibers, stack_kb, sleep_ms);
  // Read here: inside system()'s shell /proc/self/exe would be the shell.
  const std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
  int rc = 0;
  for (long kb : {16L, 32L, 64L, 256L}) {
    const std::string cmd =
        fmt::format("'{}' --stack-kb {} --fibers {} --sleep-ms {}", self, kb, fibers, sleep_ms);
    rc |= std::system(cmd.c_str());
  }
  return rc == 0 ? 0 : 1;
}
