// SPDX-License-Identifier: BSL-1.0
// What the one retry loop of every Client call (Client::State::
// send_with_retries, in retry_loop.cpp) hands back: the last attempt.
#pragma once

#include <chrono>
#include <exception>
#include <optional>

#include "concur/http.hpp"

namespace concur::llm {

/// One exchange as the retry loop saw it.
struct Attempt {
  int number = 1;                        // 1 for the first
  std::optional<http::Response> reply;   // absent after a connection error
  std::exception_ptr connection_error;   // an http::ConnectionError, else null
  std::chrono::microseconds elapsed{0};  // the exchange's own time
};

/// Whether `a` failed in a way the SDKs retry: a connection error, or a
/// reply retry::should_retry accepts.
bool failed_retryably(const Attempt& a);

}  // namespace concur::llm
