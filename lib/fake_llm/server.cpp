// SPDX-License-Identifier: BSL-1.0
// The fake server's networking: Boost.Beast on an io_context run by a few
// threads, the accept loop (shedding an idle connection when descriptors run
// out) and the /stats counters. Each connection is a Session (session.hpp);
// what happens to a chat completion is drawn in chat_outcome.cpp.
#include <algorithm>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <cerrno>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "concur/fake_llm.hpp"
#include "server_core.hpp"
#include "session.hpp"

namespace concur::fake_llm {

namespace detail {

Stats Core::snapshot() const {
  Stats out;
  out.requests = requests.load();
  out.in_flight = in_flight.load();
  out.max_in_flight = max_in_flight.load();
  out.connections = connections.load();
  out.max_connections = max_connections.load();
  out.resets = resets.load();
  out.abandoned = abandoned.load();
  std::lock_guard lock(mu);
  out.by_status = by_status;
  return out;
}

void Core::reset_stats() {
  std::lock_guard lock(mu);
  requests = 0;
  resets = 0;
  abandoned = 0;
  max_in_flight = in_flight.load();
  max_connections = connections.load();
  by_status.clear();
  seen.clear();  // a run after a reset meets the same faults as the one before
}

Core::Core(ServerOptions o)
    : opts(std::move(o)),
      limits(opts.rpm, opts.tpm, opts.limit_window),
      ioc(std::max(1, opts.threads)),
      acceptor(ioc),
      accept_retry(ioc) {
  const tcp::endpoint endpoint(net::ip::make_address(opts.host), opts.port);
  acceptor.open(endpoint.protocol());
  acceptor.set_option(net::socket_base::reuse_address(true));
  acceptor.bind(endpoint);
  acceptor.listen(net::socket_base::max_listen_connections);
  port = acceptor.local_endpoint().port();
  accept();
  const int n = std::max(1, opts.threads);
  threads.reserve(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) threads.emplace_back([this] { ioc.run(); });
}

Core::~Core() {
  ioc.stop();
  for (auto& t : threads) t.join();
  beast::error_code ignored;
  acceptor.close(ignored);
}

void Core::accept() {
  acceptor.async_accept(net::make_strand(ioc), [this](beast::error_code ec, tcp::socket socket) {
    if (ec == net::error::operation_aborted || !acceptor.is_open()) return;
    if (ec) {
      // Out of file descriptors (or similar): close the oldest connection
      // that is only waiting, so the client at the door gets its descriptor,
      // and try again shortly rather than spin.
      const bool shed = (ec == net::error::no_descriptors || ec.value() == ENFILE) && shed_idle();
      accept_retry.expires_after(milliseconds(shed ? 1 : 50));
      accept_retry.async_wait([this](beast::error_code wec) {
        if (!wec) accept();
      });
      return;
    }
    beast::error_code ignored;
    socket.set_option(tcp::no_delay(true), ignored);
    std::make_shared<Session>(std::move(socket), *this)->start();
    accept();
  });
}

bool Core::shed_idle() {
  std::shared_ptr<IdleSession> victim;
  {
    // The session unlists itself (on its strand) once shed.
    std::lock_guard lock(idle_mu);
    if (!idle.empty()) victim = idle.front().lock();
  }
  if (!victim) return false;
  victim->shed();
  return true;
}

}  // namespace detail

struct Server::Impl : detail::Core {
  using Core::Core;
};

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Server::~Server() = default;

std::uint16_t Server::port() const noexcept { return impl_->port; }
std::string Server::base_url() const {
  return "http://" + impl_->opts.host + ":" + std::to_string(impl_->port) + "/v1";
}
Stats Server::stats() const { return impl_->snapshot(); }
void Server::reset_stats() { impl_->reset_stats(); }
const ServerOptions& Server::options() const noexcept { return impl_->opts; }

}  // namespace concur::fake_llm
