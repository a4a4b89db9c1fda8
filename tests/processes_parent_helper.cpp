// SPDX-License-Identifier: BSL-1.0
// A parent with two workers that prints their pids and then waits for a long
// batch; processes_test kills it with SIGKILL and checks the workers die too.
#include <unistd.h>

#include <chrono>
#include <concur/concur.hpp>
#include <cstdio>

namespace {
// Two of these at once land on two different workers (one call per worker
// while calls are slow).
concur::Task<int> pid_after(std::chrono::milliseconds d) {
  co_await concur::sleep_for(d);
  co_return static_cast<int>(getpid());
}
CONCUR_REGISTER(pid_after);
}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);
  concur::Config c;
  c.executor = "processes";
  c.workers = 2;
  auto ex = concur::make_executor(c);
  using std::chrono::milliseconds;
  auto [a, b] = ex->gather(concur::call(pid_after, milliseconds(300)),
                           concur::call(pid_after, milliseconds(300)));
  std::printf("%d %d\n", a, b);
  std::fflush(stdout);
  ex->gather(concur::call(pid_after, milliseconds(600'000)),
             concur::call(pid_after, milliseconds(600'000)));
  return 0;
}
