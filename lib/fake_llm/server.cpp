// SPDX-License-Identifier: BSL-1.0
// The fake server's networking: Boost.Beast on an io_context run by a few
// threads. Each connection is a Session on its own strand; a delayed reply is
// a steady_timer, never a sleeping thread, so thousands of requests can wait
// at once at the cost of a timer each.
#include <atomic>
#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <vector>

#include "concur/fake_llm.hpp"
#include "protocol.hpp"
#include "rate_limits.hpp"
#include "sse_stream.hpp"

namespace concur::fake_llm {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = net::ip::tcp;
using std::chrono::milliseconds;

namespace {

constexpr std::string_view kServerName = "concur-fake-llm";

void raise_max(std::atomic<std::uint64_t>& max, std::uint64_t now) {
  std::uint64_t seen = max.load();
  while (now > seen && !max.compare_exchange_weak(seen, now)) {
  }
}

}  // namespace

namespace detail {

/// What the server may ask of a session waiting for its next request.
class IdleSession {
 public:
  virtual ~IdleSession() = default;
  /// Closes the connection (posted to the session's strand; any thread).
  virtual void shed() = 0;
};

// Everything one server owns; Server::Impl is just this.
struct Core {
  explicit Core(ServerOptions o);
  ~Core();

  /// What happens to one chat completion: a fault (or none) after a delay.
  struct Decision {
    detail::Fault fault = detail::Fault::none;
    milliseconds delay{0};
  };
  Decision decide(const detail::ChatRequest& req, const detail::Markers& markers);
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

  ServerOptions opts;
  std::atomic<std::uint64_t> requests{0}, in_flight{0}, max_in_flight{0}, connections{0},
      max_connections{0}, resets{0}, abandoned{0}, next_id{0};
  mutable std::mutex mu;  // guards by_status and seen
  std::map<int, std::uint64_t> by_status;
  // prompt -> requests so far (count markers, rate-based faults' attempts)
  std::unordered_map<std::string, int> seen;
  detail::RateLimits limits;                      // --rpm / --tpm
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

}  // namespace detail

struct Server::Impl : detail::Core {
  using Core::Core;
};

namespace {

class Session : public detail::IdleSession, public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket&& socket, detail::Core& server)
      : stream_(std::move(socket)), timer_(stream_.get_executor()), server_(server) {
    server_.connection_opened();
    // Only the hang-up watch's peek is synchronous, and it must never block
    // (see watch_for_hang_up); asynchronous operations ignore this flag.
    beast::error_code ignored;
    stream_.socket().non_blocking(true, ignored);
  }
  ~Session() override {
    if (idle_) server_.idle_remove(*idle_);
    if (in_chat_) server_.request_abandoned();  // the server stopped meanwhile
    server_.connection_closed();
  }

  void shed() override {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      if (!self->idle_) return;  // a request has started meanwhile
      self->stop_idle();
      beast::error_code ignored;
      self->stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
      self->stream_.close();
    });
  }

  void start() {
    net::dispatch(stream_.get_executor(),
                  beast::bind_front_handler(&Session::read_header, shared_from_this()));
  }

 private:
  // Two timeouts, like nginx's keepalive_timeout and client_header_timeout:
  // waiting for a request's first byte may take idle_timeout; from there the
  // header and body must arrive within header_timeout, however slowly they
  // trickle in (a slowloris client sends a byte now and then forever).
  void read_header() {
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

  void stop_idle() {
    if (!idle_) return;
    server_.idle_remove(*idle_);
    idle_.reset();
  }

  void read_request() {
    stream_.expires_after(server_.opts.header_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::on_header, shared_from_this()));
  }

  void on_header(beast::error_code ec, std::size_t) {
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

  void read_body() {
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::on_read, shared_from_this()));
  }

  void on_read(beast::error_code ec, std::size_t) {
    if (ec == http::error::body_limit) {
      keep_alive_ = false;
      version_ = parser_->get().version();
      return reply(http::status::payload_too_large,
                   detail::error_body("request body exceeds " +
                                          std::to_string(server_.opts.max_body_bytes) + " bytes",
                                      "invalid_request_error", "request_too_large"));
    }
    if (ec) return;
    stream_.expires_never();
    req_ = parser_->release();
    keep_alive_ = req_.keep_alive();
    version_ = req_.version();
    route();
  }

  void route() {
    std::string_view target(req_.target().data(), req_.target().size());
    target = target.substr(0, target.find('?'));
    const auto method = req_.method();
    if (target == "/v1/chat/completions" || target == "/chat/completions") {
      if (method == http::verb::post) return chat();
      return method_not_allowed("POST");
    }
    if (target == "/stats") {
      if (method == http::verb::get) return reply(http::status::ok, detail::stats_body(stats()));
      return method_not_allowed("GET");
    }
    if (target == "/stats/reset" && method == http::verb::post) {
      reset_stats();
      return reply(http::status::ok, R"({"reset":true})");
    }
    if (target == "/v1/models" && method == http::verb::get)
      return reply(http::status::ok, detail::models_body());
    if (target.starts_with("/v1/models/") && method == http::verb::get)
      return reply(http::status::ok, detail::model_body(target.substr(11)));
    reply(http::status::not_found,
          detail::error_body("Unknown request URL: " + std::string(req_.method_string()) + " " +
                                 std::string(target),
                             "invalid_request_error", "unknown_url"));
  }

  void method_not_allowed(std::string_view allowed) {
    reply(http::status::method_not_allowed,
          detail::error_body("use " + std::string(allowed) + " for " +
                                 std::string(req_.target().data(), req_.target().size()),
                             "invalid_request_error", "method_not_allowed"));
  }

  void chat() {
    in_chat_ = true;
    server_.request_started();
    detail::ChatRequest request;
    detail::Markers markers;
    try {
      request = detail::parse_chat_request(req_.body());
      markers = detail::parse_markers(request.last_user);
    } catch (const detail::BadRequest& e) {
      return reply(http::status::bad_request,
                   detail::error_body(e.what(), "invalid_request_error", "invalid_request"));
    }
    rate_headers_.clear();
    if (server_.limits.enabled()) {
      const std::int64_t tokens =
          detail::token_count(request.prompt_chars) +
          request.max_tokens.value_or(detail::token_count(reply_for(request.last_user).size()));
      auto verdict = server_.limits.admit(tokens);
      rate_headers_ = std::move(verdict.headers);
      if (!verdict.allowed) return rate_limited(verdict, request.model);
    }
    const auto decision = server_.decide(request, markers);
    if (decision.fault == detail::Fault::too_many_requests) return too_many_requests();
    timer_.expires_after(decision.delay);
    timer_.async_wait([self = shared_from_this(), request = std::move(request),
                       fault = decision.fault](beast::error_code ec) {
      if (!ec && self->in_chat_) self->answer(request, fault);
    });
    watch_for_hang_up(++request_seq_);
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
  void watch_for_hang_up(std::uint64_t seq) {
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

  void answer(const detail::ChatRequest& request, detail::Fault fault) {
    using detail::Fault;
    switch (fault) {
      case Fault::reset: {
        // SO_LINGER 0 makes close() send RST: the client sees "connection reset".
        beast::error_code ignored;
        stream_.socket().set_option(net::socket_base::linger(true, 0), ignored);
        in_chat_ = false;
        server_.request_reset();
        stream_.close();
        return;
      }
      case Fault::server_error:
        return reply(http::status::internal_server_error,
                     detail::error_body("The server had an error while processing your request "
                                        "(concur-fake-llm injected fault).",
                                        "server_error", "internal_error"));
      case Fault::malformed:
        return reply(http::status::ok,
                     "<html><body>upstream hiccup: concur-fake-llm injected a malformed "
                     "body</body></html>");
      default:
        if (request.stream) return stream(request);
        return reply(
            http::status::ok,
            detail::completion_body(request, reply_for(request.last_user), ++server_.next_id));
    }
  }

  void too_many_requests() {
    const auto ms = server_.opts.retry_after.count();
    prepare(http::status::too_many_requests,
            detail::error_body("Rate limit reached for requests (concur-fake-llm injected "
                               "fault). Please try again in " +
                                   std::to_string(ms) + "ms.",
                               "requests", "rate_limit_exceeded"));
    res_.set(http::field::retry_after, std::to_string((ms + 999) / 1000));
    res_.set("retry-after-ms", std::to_string(ms));
    write();
  }

  // Over --rpm / --tpm: OpenAI's 429, which says when the request would fit.
  void rate_limited(const detail::RateVerdict& v, const std::string& model) {
    const auto ms = v.retry_after.count();
    const std::string what =
        v.limited_by == "requests" ? "requests per min (RPM)" : "tokens per min (TPM)";
    const std::string message =
        v.too_large
            ? "Request too large for " + model + " on " + what + ": Limit " +
                  std::to_string(v.limit) + ", Requested " + std::to_string(v.requested) + "."
            : "Rate limit reached for " + model + " on " + what + ": Limit " +
                  std::to_string(v.limit) + ", Used " + std::to_string(v.used) + ", Requested " +
                  std::to_string(v.requested) + ". Please try again in " + std::to_string(ms) +
                  "ms.";
    prepare(http::status::too_many_requests,
            detail::error_body(message, v.limited_by, "rate_limit_exceeded"));
    if (v.too_large) {
      res_.set("x-should-retry", "false");
    } else {
      res_.set(http::field::retry_after, std::to_string((ms + 999) / 1000));
      res_.set("retry-after-ms", std::to_string(ms));
    }
    write();
  }

  // "stream": true: the reply as server-sent events (sse_stream.hpp).
  void stream(const detail::ChatRequest& request) {
    prepare(http::status::ok, "");
    http::response<http::empty_body> header;
    header.version(version_);
    header.result(http::status::ok);
    for (const auto& field : res_) header.set(field.name_string(), field.value());
    header.set(http::field::content_type, "text/event-stream; charset=utf-8");
    header.set(http::field::cache_control, "no-cache");
    header.erase(http::field::content_length);
    header.keep_alive(keep_alive_);
    if (in_chat_) {
      in_chat_ = false;
      server_.request_answered(200);
    }
    auto events = detail::stream_events(request, reply_for(request.last_user), ++server_.next_id);
    std::make_shared<detail::SseStream>(
        stream_, timer_, std::move(header), std::move(events), server_.opts.stream_interval,
        [self = shared_from_this()](beast::error_code ec) { self->on_write(ec, 0); })
        ->start();
  }

  void prepare(http::status status, std::string body) {
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

  void reply(http::status status, std::string body) {
    prepare(status, std::move(body));
    write();
  }

  void write() {
    // Counted as answered before the bytes leave, so a client that has its
    // reply never sees it still in flight in /stats.
    if (in_chat_) {
      in_chat_ = false;
      server_.request_answered(res_.result_int());
    }
    http::async_write(stream_, res_,
                      beast::bind_front_handler(&Session::on_write, shared_from_this()));
  }

  void on_write(beast::error_code ec, std::size_t) {
    if (ec) return;
    if (!keep_alive_) {
      beast::error_code ignored;
      stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
      return;
    }
    read_header();
  }

  Stats stats() const;
  void reset_stats();

  beast::tcp_stream stream_;
  net::steady_timer timer_;
  detail::Core& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  http::request<http::string_body> req_;
  http::response<http::string_body> res_;
  bool keep_alive_ = true;
  unsigned version_ = 11;
  bool in_chat_ = false;  // a chat completion is counted in flight
  std::vector<std::pair<std::string, std::string>> rate_headers_;  // x-ratelimit-*
  std::optional<detail::Core::IdleList::iterator> idle_;           // listed as idle
  std::uint64_t request_seq_ = 0;  // which request a hang-up watch belongs to
};

Stats snapshot(const detail::Core& s) {
  Stats out;
  out.requests = s.requests.load();
  out.in_flight = s.in_flight.load();
  out.max_in_flight = s.max_in_flight.load();
  out.connections = s.connections.load();
  out.max_connections = s.max_connections.load();
  out.resets = s.resets.load();
  out.abandoned = s.abandoned.load();
  std::lock_guard lock(s.mu);
  out.by_status = s.by_status;
  return out;
}

void reset(detail::Core& s) {
  std::lock_guard lock(s.mu);
  s.requests = 0;
  s.resets = 0;
  s.abandoned = 0;
  s.max_in_flight = s.in_flight.load();
  s.max_connections = s.connections.load();
  s.by_status.clear();
  s.seen.clear();  // a run after a reset meets the same faults as the one before
}

Stats Session::stats() const { return snapshot(server_); }
void Session::reset_stats() { reset(server_); }

}  // namespace

detail::Core::Core(ServerOptions o)
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

detail::Core::~Core() {
  ioc.stop();
  for (auto& t : threads) t.join();
  beast::error_code ignored;
  acceptor.close(ignored);
}

void detail::Core::accept() {
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

namespace {
// A rate-based fault is drawn from (seed, prompt, attempt), not from a shared
// stream: the n-th request with a prompt meets the same fault (or none)
// whatever order concurrent requests arrive in, so every executor of a demo
// run (the server reset between them) fails the same inputs, and a retry is
// a fresh draw. Returns a number uniform in [0, 1).
double fault_draw(std::string_view prompt, int attempt, std::uint64_t seed) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9e3779b97f4a7c15ULL);  // FNV-1a
  for (unsigned char c : prompt) h = (h ^ c) * 0x100000001b3ULL;
  h ^= static_cast<std::uint64_t>(attempt) * 0xbf58476d1ce4e5b9ULL;
  // splitmix64's finaliser spreads the last bytes' influence over every bit.
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}
}  // namespace

bool detail::Core::shed_idle() {
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

detail::Core::Decision detail::Core::decide(const detail::ChatRequest& req,
                                            const detail::Markers& markers) {
  using detail::Fault;
  Decision d;
  std::lock_guard lock(mu);
  if (markers.fault != Fault::none) {
    if (markers.count) {
      const int n = ++seen[req.last_user];
      d.fault = n <= *markers.count ? markers.fault : Fault::none;
    } else {
      d.fault = markers.fault;
    }
  } else if (const auto& r = opts.faults; r.total() > 0) {
    double u = fault_draw(req.last_user, ++seen[req.last_user], opts.seed);
    for (auto [rate, fault] :
         {std::pair{r.too_many_requests, Fault::too_many_requests},
          std::pair{r.server_error, Fault::server_error}, std::pair{r.reset, Fault::reset},
          std::pair{r.malformed, Fault::malformed}, std::pair{r.slow, Fault::slow}}) {
      if (u < rate) {
        d.fault = fault;
        break;
      }
      u -= rate;
    }
  }
  if (d.fault == Fault::slow) {
    d.delay = opts.slow_latency;
  } else if (markers.latency) {
    d.delay = *markers.latency;
  } else {
    d.delay = latency_for(req.last_user, opts);
  }
  return d;
}

// Drawn from a generator seeded by (seed, prompt), not from a shared stream:
// the same prompt waits the same time whichever order concurrent requests
// arrive in, so every executor of a demo run faces the same latencies and the
// comparison between them is fair.
milliseconds latency_for(std::string_view prompt, const ServerOptions& options) {
  const Latency& l = options.latency;
  std::uint64_t h = 0xcbf29ce484222325ULL ^ options.seed;  // FNV-1a
  for (unsigned char c : prompt) h = (h ^ c) * 0x100000001b3ULL;
  std::mt19937_64 gen(h);
  double ms = static_cast<double>(l.base.count());
  if (l.kind == Latency::Kind::uniform) {
    ms = std::uniform_real_distribution<double>(ms, static_cast<double>(l.upper.count()))(gen);
  } else if (l.kind == Latency::Kind::log_normal && l.base.count() > 0) {
    ms = std::lognormal_distribution<double>(std::log(ms), l.sigma)(gen);
  }
  return milliseconds(std::llround(ms));
}

Server::Server(ServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {}
Server::~Server() = default;

std::uint16_t Server::port() const noexcept { return impl_->port; }
std::string Server::base_url() const {
  return "http://" + impl_->opts.host + ":" + std::to_string(impl_->port) + "/v1";
}
Stats Server::stats() const { return snapshot(*impl_); }
void Server::reset_stats() { reset(*impl_); }
const ServerOptions& Server::options() const noexcept { return impl_->opts; }

}  // namespace concur::fake_llm
