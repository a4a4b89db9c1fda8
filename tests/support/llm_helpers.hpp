// SPDX-License-Identifier: BSL-1.0
// What the llm client's tests share: options for a client of the fake server
// whose retries wait milliseconds, not the SDKs' half a second and more.
#pragma once

#include <chrono>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>

namespace concur::testing {

inline llm::ClientOptions fast_retries(const fake_llm::Server& server) {
  using namespace std::chrono_literals;
  llm::ClientOptions o;
  o.base_url = server.base_url();
  o.model = "test-model";
  o.initial_backoff = 10ms;
  o.max_backoff = 40ms;
  return o;
}

}  // namespace concur::testing
