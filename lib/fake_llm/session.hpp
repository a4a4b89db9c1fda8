// SPDX-License-Identifier: BSL-1.0
// One client connection of the fake server, on its own strand; a delayed
// reply is a steady_timer, never a sleeping thread. Its connection handling
// is in session.cpp, what each request gets in routes.cpp.
#pragma once

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "protocol.hpp"
#include "rate_limits.hpp"
#include "server_core.hpp"

namespace concur::fake_llm::detail {

namespace beast = boost::beast;
namespace http = beast::http;

class Session : public IdleSession, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, Core& server);
  ~Session() override;

  void shed() override;
  void start();

 private:
  // The connection (session.cpp).
  void read_header();
  void stop_idle();
  void read_request();
  void on_header(beast::error_code ec, std::size_t);
  void read_body();
  void on_read(beast::error_code ec, std::size_t);
  void watch_for_hang_up(std::uint64_t seq);
  void prepare(http::status status, std::string body);
  void reply(http::status status, std::string body);
  void write();
  void on_write(beast::error_code ec, std::size_t);

  // What a request gets (routes.cpp).
  void route();
  void method_not_allowed(std::string_view allowed);
  void chat();
  void answer(const ChatRequest& request, Fault fault);
  void too_many_requests();
  void rate_limited(const RateVerdict& v, const std::string& model);
  void stream(const ChatRequest& request);

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  Core& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool in_chat_ = false;  // a chat completion is counted in flight
  std::vector<std::pair<std::string, std::string>> rate_headers_;  // x-ratelimit-*
  std::optional<Core::IdleList::iterator> idle_;                   // listed as idle
  std::uint64_t request_seq_ = 0;  // which request a hang-up watch belongs to
};

}  // namespace concur::fake_llm::detail
