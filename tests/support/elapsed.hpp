// SPDX-License-Identifier: BSL-1.0
// Wall time since a point, for the loose upper bounds tests put on a wait
// that must not run to its end (never a speed-up claim: see DESIGN §10).
#pragma once

#include <chrono>

namespace concur::testing {

inline double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace concur::testing
