// SPDX-License-Identifier: BSL-1.0
#pragma once
#include <memory>

#include "concur/executor.hpp"

namespace concur::executors {

/// thread_pool on oneTBB: `config.workers` threads (0 = default_thread_pool_workers()).
std::unique_ptr<Executor> make_thread_pool(const Config& c);

/// Like Python's ThreadPoolExecutor: min(32, cores + 4), sized for blocking I/O.
int default_thread_pool_workers();

}  // namespace concur::executors
