// SPDX-License-Identifier: BSL-1.0
// A rank other than 0: runs the worker process rank 0 asks for and carries
// its streams over MPI (wire.hpp).
#pragma once

namespace boost::mpi {
class communicator;
}

namespace concur::executors::cluster {

/// Serves rank 0 until it says the job is over.
void run_relay(boost::mpi::communicator& world);

}  // namespace concur::executors::cluster
