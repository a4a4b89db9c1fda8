// SPDX-License-Identifier: BSL-1.0
#pragma once
#include <memory>

#include "concur/executor.hpp"

namespace concur::executors {
std::unique_ptr<Executor> make_sequential(const Config& c);
}
