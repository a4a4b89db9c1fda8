// SPDX-License-Identifier: BSL-1.0
// processes: registered calls in a pool of worker processes (Boost.Process).
#pragma once

#include <memory>
#include <string>

#include "concur/executor.hpp"
#include "executors/processes/pool.hpp"

namespace concur::executors {

std::unique_ptr<Executor> make_processes(const Config& c);

namespace processes {
/// An executor of the processes family: the same parent (routing, pool,
/// faults) over workers that `launch` starts (cluster: one per MPI rank).
struct Family {
  std::string name;  // "processes", "cluster"
  int workers = 1;
  decltype(PoolOptions::launch) launch;  // empty: child processes of ours
};
std::unique_ptr<Executor> make_family(const Config& c, const Family& family);
}  // namespace processes

}  // namespace concur::executors
