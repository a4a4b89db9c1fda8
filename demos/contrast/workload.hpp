// SPDX-License-Identifier: BSL-1.0
// The two kinds of work concur-contrast compares: waiting and computing.
#pragma once

#include <chrono>
#include <concur/concur.hpp>
#include <cstdint>
#include <string>

namespace concur::demo {

/// I/O-bound: waits `d` (a library wait, like an API call) and returns `i`.
Task<int> io_wait(std::chrono::milliseconds d, int i);

/// CPU-bound: `rounds` of a 64-bit mixing hash seeded by `seed`, as 16 hex
/// digits. Polls concur::cancelled() between chunks, so a timeout stops it.
Task<std::string> cpu_hash(std::uint64_t seed, std::uint64_t rounds);

/// Rounds of cpu_hash's loop that take about `target` on this thread.
std::uint64_t calibrate_rounds(std::chrono::milliseconds target);

}  // namespace concur::demo
