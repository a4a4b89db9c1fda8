// SPDX-License-Identifier: BSL-1.0
#include "executors/cluster/world.hpp"

#include <mpi.h>

#include <boost/mpi/collectives/all_gather.hpp>
#include <boost/mpi/communicator.hpp>
#include <boost/mpi/environment.hpp>
#include <boost/serialization/string.hpp>
#include <boost/serialization/vector.hpp>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>

#include <unistd.h>

#include "executors/cluster/bridge.hpp"
#include "executors/cluster/relay.hpp"
#include "executors/cluster/wire.hpp"

namespace concur::executors::cluster {

namespace mpi = boost::mpi;

namespace {
// Never destroyed by static destructors: end_job() ends MPI at exit, after
// the bridge thread (the only one that talks MPI after init) has stopped.
mpi::environment* g_environment = nullptr;
mpi::communicator* g_world = nullptr;
std::vector<std::string> g_hosts;
bool g_ended = false;

// Set by a rank once MPI is up, to its pid: a program that a rank starts
// inherits mpirun's variables but is no rank, and must not start MPI.
constexpr const char* kRankVariable = "CONCUR_INTERNAL_MPI_RANK_PID";

bool launched_by_mpirun() {
  if (std::getenv("OMPI_COMM_WORLD_SIZE") == nullptr && std::getenv("PMIX_RANK") == nullptr) {
    return false;
  }
  const char* rank_pid = std::getenv(kRankVariable);
  return rank_pid == nullptr || std::atoi(rank_pid) == static_cast<int>(getpid());
}
}  // namespace

void serve_if_rank(int argc, char** argv) {
  if (g_world != nullptr || !launched_by_mpirun()) return;
  try {
    int started = 0;
    MPI_Initialized(&started);
    // A program that started MPI itself keeps it (and ends it itself).
    if (started == 0) {
      g_environment = new mpi::environment(argc, argv, mpi::threading::serialized, true);
    }
    int level = 0;
    MPI_Query_thread(&level);
    if (level < MPI_THREAD_SERIALIZED) {
      std::fprintf(stderr,
                   "concur cluster: this MPI offers only thread level %d; concur needs "
                   "MPI_THREAD_SERIALIZED (its bridge thread talks MPI)\n",
                   level);
      MPI_Abort(MPI_COMM_WORLD, 70);
    }
    g_world = new mpi::communicator();
    ::setenv(kRankVariable, std::to_string(getpid()).c_str(), 1);
    mpi::all_gather(*g_world, mpi::environment::processor_name(), g_hosts);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur cluster: cannot start MPI: %s\n", e.what());
    std::exit(70);
  }
  if (g_world->rank() != 0) {
    run_relay(*g_world);
    delete g_environment;  // MPI_Finalize
    std::exit(0);
  }
  std::atexit(end_job);
}

bool in_job() noexcept { return g_world != nullptr; }
int ranks() noexcept { return g_world != nullptr ? g_world->size() : 1; }
const std::vector<std::string>& hosts() { return g_hosts; }
mpi::communicator& world() { return *g_world; }

void end_job() noexcept {
  if (g_ended || g_world == nullptr) return;
  g_ended = true;
  stop_bridge();
  try {
    for (int r = 1; r < g_world->size(); ++r) {
      const std::string m = message(0);
      g_world->send(r, Tag::shutdown, m.data(), static_cast<int>(m.size()));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur cluster: cannot tell the ranks to end: %s\n", e.what());
  }
  delete g_environment;  // MPI_Finalize
  g_environment = nullptr;
}

}  // namespace concur::executors::cluster
