// SPDX-License-Identifier: BSL-1.0
// The chat-completions wire format: request bodies out, response and error
// bodies in (Boost.JSON). No I/O here, so it is testable on its own.
#pragma once

#include <string>
#include <string_view>

#include "concur/llm.hpp"

namespace boost::json {
class value;
}

namespace concur::llm::wire {

/// The JSON body of POST /chat/completions. `stream` adds "stream": true and
/// stream_options.include_usage (so the last chunk carries the usage).
std::string encode_request(const ChatRequest& request, std::string_view model, bool stream = false);

/// Parses a 2xx body. Throws ApiError (status, kNotJson / kBadShape) for a
/// body that is not a chat completion. `where` is "POST <url>".
ChatResponse decode_response(std::string_view body, long status, const std::string& where,
                             const std::string& url);

/// The ApiError for a non-2xx reply: the fields of {"error":{...}} when the
/// body has them, else the body's first 200 bytes quoted. `where` is
/// "POST <url>", `attempts` how many were made.
ApiError error_from_reply(long status, std::string_view body, const std::string& where,
                          const std::string& url, int attempts);

/// At most the first 200 bytes of `body`, for messages.
std::string excerpt(std::string_view body);

/// A JSON field as plain text: strings as they are, numbers printed, null
/// or absent (nullptr) empty.
std::string text_of(const boost::json::value* v);
/// A JSON field as an integer: 0 if absent or not one.
long long_of(const boost::json::value* v);

}  // namespace concur::llm::wire
