// SPDX-License-Identifier: BSL-1.0
// Rank 0's side of a cluster job: workers on the other ranks made to look
// like the pool's own child processes. Each gets a socket pair per stream
// (requests, replies, stderr); a bridge thread carries their bytes to and
// from the rank's relay over MPI (wire.hpp), and the rank's report of a
// death (wait status, last words) answers the pool's questions about it.
#pragma once

#include <boost/asio/io_context.hpp>
#include <memory>
#include <string>
#include <vector>

#include "executors/processes/worker_process.hpp"

namespace concur::executors::cluster {

/// Launches one worker for the cluster pool on the first free place of the
/// job: rank 0's own child process (site 0) or rank r's (site r). Starts the
/// bridge thread on first use.
std::shared_ptr<processes::Worker> launch_on_ranks(boost::asio::io_context& io,
                                                   const std::string& executable,
                                                   const std::vector<std::string>& environment,
                                                   const std::vector<int>& sites);

/// Stops the bridge thread (at exit, before MPI ends).
void stop_bridge() noexcept;

}  // namespace concur::executors::cluster
