// SPDX-License-Identifier: BSL-1.0
// The trace recorder's second job, at stop(): replaying the per-thread
// records of one recording into the tasks of a Trace.
#pragma once

#include <cstdint>
#include <string>

#include "concur/trace.hpp"
#include "core/trace_buffer.hpp"

namespace concur::trace::detail {

/// The Trace of recording `gen`, from the buffers, external tasks and stalls
/// in `r` (its mutex held), with times converted by `cal`; only the tasks of
/// executor `only_executor` if it is not empty.
Trace rebuild(const Registry& r, std::uint64_t gen, const Calibration& cal,
              Clock::time_point stop_time, const std::string& only_executor);

}  // namespace concur::trace::detail
