// SPDX-License-Identifier: BSL-1.0
// cluster: the processes executor over the ranks of an MPI job. Rank 0 runs
// the program and one worker of its own; every other rank runs one worker
// behind a relay (relay.cpp), reached through the bridge (bridge.cpp). Calls
// are dealt as processes deals them: the least-loaded worker with a free
// slot gets the next one, `worker_concurrency` at a time in each.
#include <fmt/format.h>

#include <memory>

#include "concur/errors.hpp"
#include "executors/cluster/bridge.hpp"
#include "executors/cluster/world.hpp"
#include "executors/processes.hpp"

namespace concur::executors {

namespace {
constexpr const char* kHowToLaunch =
    "launch the program with mpirun, e.g. `mpirun -np 3 ./app --executor cluster` (as root, "
    "with OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 in the environment; on "
    "several hosts add --hostfile FILE)";
}

std::unique_ptr<Executor> make_cluster(const Config& c) {
  if (!cluster::in_job()) {
    throw ConfigError(fmt::format(
        "concur config: executor \"cluster\" runs calls on the ranks of an MPI job, and this "
        "program was not started by mpirun (or concur::init was not called): {}",
        kHowToLaunch));
  }
  if (cluster::ranks() < 2) {
    throw ConfigError(fmt::format(
        "concur config: executor \"cluster\" needs an MPI job of at least 2 ranks, and this one "
        "has 1: {}",
        kHowToLaunch));
  }
  processes::Family family;
  family.name = "cluster";
  family.workers = cluster::ranks();
  family.launch = &cluster::launch_on_ranks;
  return processes::make_family(c, family);
}

bool cluster_available() noexcept { return cluster::in_job() && cluster::ranks() >= 2; }

}  // namespace concur::executors
