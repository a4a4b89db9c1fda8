// SPDX-License-Identifier: BSL-1.0
// concur-batch on the processes executor: the HTTP exchange of one request as
// a registered call that runs in a worker process, its reply sent back as
// text. The controller, the reader and the output stay in the parent, which
// hands each call the moment it may be sent (its paced slot) and learns from
// each reply as it comes back (as_completed).
#pragma once

#include <concur/concur.hpp>
#include <concur/llm.hpp>
#include <cstdint>
#include <optional>
#include <string>

namespace concur::batch {

/// In a worker: waits until `send_at_ns` (steady clock, machine-wide on
/// Linux), sends the request with a Client built here from the options, and
/// returns the reply encoded by encode_reply (or a transport failure).
Task<std::string> batch_send(std::string base_url, std::string api_key, std::string method,
                             std::string path, std::string body, std::int64_t send_at_ns,
                             std::int64_t timeout_ms);

/// What batch_send returns, decoded in the parent.
struct RemoteReply {
  std::optional<llm::RawResponse> reply;  ///< absent: a transport failure
  std::string failure;
  bool transient = false;  ///< a connection error (worth a retry)
};
RemoteReply decode_reply(const std::string& text);

}  // namespace concur::batch
