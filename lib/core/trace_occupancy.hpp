// SPDX-License-Identifier: BSL-1.0
// How many tasks were in flight, and how many on a CPU, at each moment of a
// trace: the aggregate strip of the timeline picture and the demos' "on a
// CPU at once" figure are both read from this one step function.
#pragma once

#include <vector>

#include "concur/trace.hpp"

namespace concur::trace::detail {

/// From `at` until the next step: `in_flight` tasks begun and not ended,
/// `running` threads (lanes) running one of them (a thread runs one task at
/// a time: a child run inline inside its parent counts once).
struct Step {
  Nanos at{0};
  int in_flight = 0;
  int running = 0;
};

/// The steps in time order; the last has both counts zero.
std::vector<Step> occupancy(const Trace& t);

/// The CPUs this process may run on (sched_getaffinity), at least 1.
unsigned usable_cpus() noexcept;

}  // namespace concur::trace::detail
