// SPDX-License-Identifier: BSL-1.0
// What concur::init asks of the executors, defined by them
// (lib/executors/serve_if_launched.cpp), so that core includes none of them.
#pragma once

namespace concur::detail {

/// Serves calls and never returns if this process was launched to (a worker
/// process, an MPI rank other than 0); else returns at once.
void serve_if_launched(int argc, char** argv);

}  // namespace concur::detail
