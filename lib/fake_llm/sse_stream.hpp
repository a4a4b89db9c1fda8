// SPDX-License-Identifier: BSL-1.0
// A streamed chat completion as the fake server sends it: the events of an
// OpenAI "chat.completion.chunk" stream (role, content pieces, finish, the
// usage chunk when asked for, then "data: [DONE]"), written as HTTP/1.1
// chunked transfer encoding, the first content after the request's latency
// (its time to first token) and the rest `interval` apart.
#pragma once

#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "protocol.hpp"

namespace concur::fake_llm::detail {

/// The "data: ...\n\n" events answering `req` with `content` in pieces of at
/// most `piece_chars` code points, ending with "data: [DONE]\n\n".
std::vector<std::string> stream_events(const ChatRequest& req, std::string_view content,
                                       std::uint64_t id, std::size_t piece_chars = 3);

class SseStream : public std::enable_shared_from_this<SseStream> {
 public:
  using Done = std::function<void(boost::beast::error_code)>;
  /// `header` is the 200 response to send first (its body is ignored);
  /// `done` runs after the last chunk or on the first error.
  SseStream(boost::beast::tcp_stream& stream, boost::asio::steady_timer& timer,
            boost::beast::http::response<boost::beast::http::empty_body> header,
            std::vector<std::string> events, std::chrono::milliseconds interval, Done done);
  void start();

 private:
  void next(std::size_t i);
  boost::beast::tcp_stream& stream_;
  boost::asio::steady_timer& timer_;
  boost::beast::http::response<boost::beast::http::empty_body> header_;
  boost::beast::http::response_serializer<boost::beast::http::empty_body> serializer_;
  std::vector<std::string> events_;
  std::chrono::milliseconds interval_;
  Done done_;
};

}  // namespace concur::fake_llm::detail
