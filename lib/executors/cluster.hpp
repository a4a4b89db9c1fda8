// SPDX-License-Identifier: BSL-1.0
// cluster: registered calls on the ranks of an MPI job (Open MPI, Boost.MPI).
#pragma once

#include <memory>

#include "concur/executor.hpp"

namespace concur::executors {

std::unique_ptr<Executor> make_cluster(const Config& c);
/// True in an MPI job of 2 ranks or more (where make_cluster succeeds).
bool cluster_available() noexcept;

}  // namespace concur::executors
