// SPDX-License-Identifier: BSL-1.0
// This process's place in an MPI job (Boost.MPI), set up by concur::init.
#pragma once

#include <optional>
#include <string>
#include <vector>

namespace boost::mpi {
class communicator;
}

namespace concur::executors::cluster {

/// In a program started by mpirun: starts MPI, and on every rank but 0
/// serves calls (a relay, relay.cpp) and exits when rank 0's program ends;
/// never returns there. Elsewhere does nothing. Called by concur::init.
void serve_if_rank(int argc, char** argv);

/// True when MPI was started here (a program launched by mpirun).
bool in_job() noexcept;
/// The job's ranks (1 outside a job).
int ranks() noexcept;
/// The host of each rank, as MPI names it (empty outside a job).
const std::vector<std::string>& hosts();
/// The job's world communicator. Only the bridge's thread talks through it
/// after init (MPI_THREAD_SERIALIZED).
boost::mpi::communicator& world();

/// Run by rank 0 as its program exits: stops the bridge, tells the relays
/// to leave and ends MPI.
void end_job() noexcept;

}  // namespace concur::executors::cluster
