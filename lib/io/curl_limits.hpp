// SPDX-License-Identifier: BSL-1.0
// How many transfers one process may keep in flight without running out of
// file descriptors.
#pragma once

#include <cstddef>

namespace concur::io {

/// Half of the descriptors free now under RLIMIT_NOFILE, less a reserve (at
/// least 4). Half, because a loopback peer in the same process (the
/// in-process fake LLM server) spends one descriptor per connection too.
/// Each engine asks once, when it first runs a transfer.
std::size_t transfer_budget();

}  // namespace concur::io
