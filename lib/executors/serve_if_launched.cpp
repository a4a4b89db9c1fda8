// SPDX-License-Identifier: BSL-1.0
// concur::init's one question to the executors: was this copy of the program
// launched to serve calls? A worker process serves (processes), and so does
// every MPI rank but 0 (cluster); neither returns.
#include "core/launch_hook.hpp"
#include "executors/cluster/world.hpp"
#include "executors/processes/protocol.hpp"

namespace concur::detail {

void serve_if_launched(int argc, char** argv) {
  // A worker first: workers inherit mpirun's environment but are no ranks.
  executors::processes::serve_if_worker();
  executors::cluster::serve_if_rank(argc, argv);
}

}  // namespace concur::detail
