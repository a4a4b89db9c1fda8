// SPDX-License-Identifier: BSL-1.0
// Everything one fake server owns and its connections share: the counters
// behind /stats, the sessions waiting idle (shed when descriptors run out),
// the rate limits, the fault and latency draws, and the io_context with its
// acceptor and threads. Server::Impl is just this.
#pragma once

#include <atomic>
#include <boost/asio.hpp>
#include <chrono>
#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "concur/fake_llm.hpp"
#include "protocol.hpp"
#include "rate_limits.hpp"

namespace concur::fake_llm::detail {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;

inline void raise_max(std::atomic<std::uint64_t>& max, std::uint64_t now) {
  std::uint64_t seen = max.load();
  while (now > seen && !max.compare_exchange_weak(seen, now)) {
  }
}

/// What the server may ask of a session waiting for its next request.
class IdleSession {
 public:
  virtual ~IdleSession() = default;
  /// Closes the connection (posted to the session's strand; any thread).
  virtual void shed() = 0;
};

struct Core {
  explicit Core(ServerOptions o);
  ~Core();

  /// What happens to one chat completion: a fault (or none) after a delay.
  struct Decision {
    Fault fault = Fault::none;
    milliseconds delay{0};
  };
  Decision decide(const ChatRequest& req, const Markers& markers);
  void accept();

  void request_started() {
    ++requests;
    raise_max(max_in_flight, ++in_flight);
  }
  void request_answered(int status) {
    --in_flight;
    std::lock_guard lock(mu);
    ++by_status[status];
  }
  void request_reset() {
    --in_flight;
    ++resets;
  }
  void request_abandoned() {
    --in_flight;
    ++abandoned;
  }
  void connection_opened() { raise_max(max_connections, ++connections); }
  void connection_closed() { --connections; }

  // Sessions waiting for a request's first byte, oldest first: when the
  // process runs out of descriptors, the oldest is closed so that a new
  // client can be accepted (silent connections must not lock others out).
  using IdleList = std::list<std::weak_ptr<IdleSession>>;
  IdleList::iterator idle_add(std::weak_ptr<IdleSession> s) {
    std::lock_guard lock(idle_mu);
    return idle.insert(idle.end(), std::move(s));
  }
  void idle_remove(IdleList::iterator it) {
    std::lock_guard lock(idle_mu);
    idle.erase(it);
  }
  /// Closes the oldest idle connection; false if there is none.
  bool shed_idle();

  /// The /stats figures now.
  Stats snapshot() const;
  /// Zeroes the counts and the per-prompt attempts (the maxima start again
  /// from what is open now).
  void reset_stats();

  ServerOptions opts;
  std::atomic<std::uint64_t> requests{0}, in_flight{0}, max_in_flight{0}, connections{0},
      max_connections{0}, resets{0}, abandoned{0}, next_id{0};
  mutable std::mutex mu;  // guards by_status and seen
  std::map<int, std::uint64_t> by_status;
  // prompt -> requests so far (count markers, rate-based faults' attempts)
  std::unordered_map<std::string, int> seen;
  RateLimits limits;                              // --rpm / --tpm
  std::atomic<std::uint64_t> next_request_id{0};  // x-request-id
  std::mutex idle_mu;                             // guards idle
  IdleList idle;

  // Declared after the state above: destroying the io_context destroys the
  // sessions still queued in it, and they update these counters as they go.
  net::io_context ioc;
  tcp::acceptor acceptor;
  net::steady_timer accept_retry;
  std::vector<std::thread> threads;
  std::uint16_t port = 0;
};

}  // namespace concur::fake_llm::detail
