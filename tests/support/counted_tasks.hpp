// SPDX-License-Identifier: BSL-1.0
// Tasks that sleep and count how they ended, for the suites that check a
// cancelled sibling really stopped (race, task_group): value_after returns
// its value after a sleep, fail_after throws QuotaExceeded after one.
// (support/elapsed.hpp comes along: those suites bound their waits too.)
#pragma once

#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <stdexcept>
#include <string>

#include "support/elapsed.hpp"

namespace concur::testing {

struct QuotaExceeded : std::runtime_error {
  using std::runtime_error::runtime_error;
};

/// value_after tasks begun, ended (either way), and ended by cancellation.
inline std::atomic<int> g_started{0};
inline std::atomic<int> g_ended{0};
inline std::atomic<int> g_cancelled{0};

inline Task<int> value_after(std::chrono::milliseconds d, int v) {
  ++g_started;
  try {
    co_await concur::sleep_for(d);
  } catch (const concur::Cancelled&) {
    ++g_cancelled;
    ++g_ended;
    throw;
  }
  ++g_ended;
  co_return v;
}

inline Task<int> fail_after(std::chrono::milliseconds d, std::string why) {
  co_await concur::sleep_for(d);
  throw QuotaExceeded(why);
}

}  // namespace concur::testing
