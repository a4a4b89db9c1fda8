// SPDX-License-Identifier: BSL-1.0
// What a Client holds, shared by the files that implement its calls (chat in
// client.cpp, the raw form in raw.cpp, streaming in stream.cpp).
#pragma once

#include <optional>
#include <string>

#include "concur/llm.hpp"
#include "llm/rate_limiter.hpp"

namespace concur::llm {

struct Client::State {
  ClientOptions options;
  std::string url;        // {base_url}/chat/completions
  std::string where;      // "POST <url>", for messages
  http::Headers headers;  // sent with every request
  std::optional<RateLimiter> limiter;
};

}  // namespace concur::llm
