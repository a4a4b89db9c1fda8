// SPDX-License-Identifier: BSL-1.0
// processes: registered calls in a pool of worker processes (Boost.Process).
#pragma once

#include <memory>

#include "concur/executor.hpp"

namespace concur::executors {

std::unique_ptr<Executor> make_processes(const Config& c);

}  // namespace concur::executors
