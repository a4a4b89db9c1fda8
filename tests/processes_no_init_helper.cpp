// SPDX-License-Identifier: BSL-1.0
// A program that forgets concur::init: launched as a worker it cannot serve.
// (Used as worker_executable by processes_test's forgotten-init case.)
#include <concur/concur.hpp>
#include <cstdio>

namespace {
int worker_pid() { return 0; }
CONCUR_REGISTER(worker_pid);
}  // namespace

int main() {
  // No concur::init here. Its own processes executor must refuse to start,
  // rather than launch workers that launch workers.
  try {
    concur::Config c;
    c.executor = "processes";
    auto ex = concur::make_executor(c);
    auto [pid] = ex->gather(concur::call(worker_pid));
    std::printf("unexpectedly served: %d\n", pid);
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
}
