// SPDX-License-Identifier: BSL-1.0
// One connection of the fake server: reading requests under two timeouts,
// keep-alive and pipelining, writing replies, and noticing a client that
// hangs up while its reply waits. What a request gets is in routes.cpp.
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <memory>
#include <string>
#include <utility>

#include "protocol.hpp"
#include "session.hpp"

namespace concur::fake_llm::detail {

namespace {
constexpr std::string_view kServerName = "concur-fake-llm";
}  // namespace

Session::Session(tcp::socket&& socket, Core& server)
    : stream_(std::move(socket)), timer_(stream_.get_executor()), server_(server) {
  server_.connection_opened();
  // Only the hang-up watch's peek is synchronous, and it must never block
  // (see watch_for_hang_up); asynchronous operations ignore this flag.
  beast::error_code ignored;
  stream_.socket().non_blocking(true, ignored);
}

Session::~Session() {
  if (idle_) server_.idle_remove(*idle_);
  if (in_chat_) server_.request_abandoned();  // the server stopped meanwhile
  server_.connection_closed();
}

void Session::shed() {
  net::post(stream_.get_executor(), [self = shared_from_this()] {
    if (!self->idle_) return;  // a request has started meanwhile
    self->stop_idle();
    beast::error_code ignored;
    self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    self->stream_.close();
  });
}

void Session::start() {
  net::dispatch(stream_.get_executor(),
                beast::bind_front_handler(&Session::read_header, shared_from_this()));
}

// Two timeouts, like nginx's keepalive_timeout and client_header_timeout:
// waiting for a request's first byte may take idle_timeout; from there the
// header and body must arrive within header_timeout, however slowly they
// trickle in (a slowloris client sends a byte now and then forever).
void Session::read_header() {
  parser_.emplace();
  parser_->body_limit(server_.opts.max_body_bytes);
  if (buffer_.size() > 0) return read_request();  // a pipelined request is here already
  idle_ = server_.idle_add(weak_from_this());
  stream_.expires_after(server_.opts.idle_timeout);
  stream_.async_read_some(buffer_.prepare(4096),
                          [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                            self->stop_idle();
                            if (ec)
                              return;  // closed, idle too long, or shed: the connection just ends
                            self->buffer_.commit(n);
                            self->read_request();
                          });
}

void Session::stop_idle() {
  if (!idle_) return;
  server_.idle_remove(*idle_);
  idle_.reset();
}

void Session::read_request() {
  stream_.expires_after(server_.opts.header_timeout);
  http::async_read_header(stream_, buffer_, *parser_,
                          beast::bind_front_handler(&Session::on_header, shared_from_this()));
}

void Session::on_header(beast::error_code ec, std::size_t) {
  if (ec) return;  // closed, too slow or garbage: the connection just ends
  // curl sends "Expect: 100-continue" before large bodies and waits for this.
  if (beast::iequals(parser_->get()[http::field::expect], "100-continue")) {
    auto cont = std::make_shared<http::response<http::empty_body>>(http::status::continue_, 11);
    http::async_write(stream_, *cont,
                      [self = shared_from_this(), cont](beast::error_code wec, std::size_t) {
                        if (!wec) self->read_body();
                      });
    return;
  }
  read_body();
}

void Session::read_body() {
  http::async_read(stream_, buffer_, *parser_,
                   beast::bind_front_handler(&Session::on_read, shared_from_this()));
}

void Session::on_read(beast::error_code ec, std::size_t) {
  if (ec == http::error::body_limit) {
    keep_alive_ = false;
    version_ = parser_->get().version();
    return reply(
        http::status::payload_too_large,
        error_body("request body exceeds " + std::to_string(server_.opts.max_body_bytes) + " bytes",
                   "invalid_request_error", "request_too_large"));
  }
  if (ec) return;
  stream_.expires_never();
  req_ = parser_->release();
  keep_alive_ = req_.keep_alive();
  version_ = req_.version();
  route();
}

// While a reply waits, notice a client that gives up (a timeout or a
// cancelled task closes its connection), as a real server would: the
// request then stops counting as in flight and its connection is closed
// now rather than when the timer fires. Waiting for readability consumes
// nothing, so bytes of a pipelined next request stay for the next read.
//
// Readiness is only a hint: an epoll event harvested by one io thread just
// before another thread's speculative read consumed the request can still
// complete this wait when nothing is left to read. So the peek is
// non-blocking (the socket is in non-blocking mode) and "would block" just
// re-arms the watch. A blocking peek here once parked an io thread in
// poll() forever, and with it this session's strand: the reply timer could
// never run and the client waited for ever.
void Session::watch_for_hang_up(std::uint64_t seq) {
  stream_.socket().async_wait(
      tcp::socket::wait_read, [self = shared_from_this(), seq](beast::error_code ec) {
        if (ec || seq != self->request_seq_ || !self->in_chat_) return;
        char byte;
        beast::error_code peek_ec;
        const auto n = self->stream_.socket().receive(net::buffer(&byte, 1),
                                                      tcp::socket::message_peek, peek_ec);
        if (peek_ec == net::error::would_block || peek_ec == net::error::try_again ||
            peek_ec == net::error::interrupted)
          return self->watch_for_hang_up(seq);  // a spurious wake-up
        if (n > 0 && !peek_ec) return;          // a pipelined request, not a hang-up
        self->in_chat_ = false;
        self->server_.request_abandoned();
        self->timer_.cancel();
        self->stream_.close();
      });
}

void Session::prepare(http::status status, std::string body) {
  res_ = {};
  res_.version(version_);
  res_.result(status);
  res_.set(http::field::server, kServerName);
  res_.set(http::field::content_type, "application/json");
  res_.keep_alive(keep_alive_);
  if (in_chat_) {
    for (const auto& [name, value] : rate_headers_) res_.set(name, value);
    res_.set("x-request-id", "req_" + std::to_string(++server_.next_request_id));
  }
  res_.body() = std::move(body);
  res_.prepare_payload();
}

void Session::reply(http::status status, std::string body) {
  prepare(status, std::move(body));
  write();
}

void Session::write() {
  // Counted as answered before the bytes leave, so a client that has its
  // reply never sees it still in flight in /stats.
  if (in_chat_) {
    in_chat_ = false;
    server_.request_answered(res_.result_int());
  }
  http::async_write(stream_, res_,
                    beast::bind_front_handler(&Session::on_write, shared_from_this()));
}

void Session::on_write(beast::error_code ec, std::size_t) {
  if (ec) return;
  if (!keep_alive_) {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    return;
  }
  read_header();
}

}  // namespace concur::fake_llm::detail
