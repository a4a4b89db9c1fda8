// SPDX-License-Identifier: BSL-1.0
// concur::fake_llm: a loopback OpenAI-compatible chat-completions server.
//
// The demos' embedded default and the tests' peer: it answers
//   POST /v1/chat/completions   an OpenAI "chat.completion" body
//   GET  /v1/models             one model, so SDKs that list models are happy
//   GET  /stats                 requests, in flight, max in flight, per-status counts
//   POST /stats/reset           zeroes the counters (benchmarks between runs)
// after a latency drawn from a seeded distribution (per prompt: the same
// prompt always waits the same, whatever the arrival order), with a reply
// derived only from the prompt (reply_for), so a client can check that results
// come back in input order. Faults are injected by seeded rate (drawn per prompt
// and attempt: the n-th request with a prompt meets the same fault whatever
// the arrival order, so runs on different executors fail the same inputs;
// reset_stats() starts the attempts again) or by a marker in the last
// user message:
//   [[fault:429]]        429 with Retry-After / retry-after-ms and an OpenAI error body
//   [[fault:500]]        500 with an OpenAI error body
//   [[fault:reset]]      the connection is reset (RST) instead of answered
//   [[fault:malformed]]  200 whose body is not JSON
//   [[fault:slow]]       the reply waits ServerOptions::slow_latency
//   [[fault:KIND:N]]     the first N requests with this exact prompt fail, later ones succeed
//                        (counted since start or the last reset_stats())
//   [[latency:NNms]]     this request's latency instead of a drawn one
// "stream": true is answered with server-sent events (chat.completion.chunk
// objects, then "data: [DONE]"); --rpm/--tpm limits answer 429 the way
// OpenAI does (see ServerOptions::rpm).
//
// ```cpp
// #include <chrono>
// #include <string>
// using namespace std::chrono_literals;
//
// std::string start_one() {
//   concur::fake_llm::Server server({.latency = concur::fake_llm::Latency::fixed(200ms)});
//   return server.base_url();  // "http://127.0.0.1:PORT/v1"; stops with `server`
// }
// ```
//
// It is asynchronous (Boost.Beast on a few threads, one timer per delayed
// reply), so it holds tens of thousands of idle keep-alive connections.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace concur::fake_llm {

/// How long the server "thinks" before answering.
struct Latency {
  enum class Kind { fixed, uniform, log_normal };
  Kind kind = Kind::fixed;
  /// fixed: the latency; uniform: the lower bound; log_normal: the median.
  std::chrono::milliseconds base{0};
  /// uniform: the upper bound (unused otherwise).
  std::chrono::milliseconds upper{0};
  /// log_normal: sigma of the underlying normal (0.5 gives roughly 0.4x..2.7x the median).
  double sigma = 0.5;

  static Latency fixed(std::chrono::milliseconds d) { return {Kind::fixed, d, d, 0}; }
  static Latency uniform(std::chrono::milliseconds lo, std::chrono::milliseconds hi) {
    return {Kind::uniform, lo, hi, 0};
  }
  static Latency log_normal(std::chrono::milliseconds median, double sigma) {
    return {Kind::log_normal, median, median, sigma};
  }
  /// Parses "200ms", "fixed:200ms", "uniform:100ms..500ms", "lognormal:1500ms,0.5"
  /// (units ms or s). Throws std::invalid_argument naming the bad text.
  static Latency parse(std::string_view text);
  /// The inverse of parse(), for --help and reports.
  std::string describe() const;
};

/// Probability (0..1) that a request without a marker gets each fault.
struct FaultRates {
  double too_many_requests = 0;  ///< 429
  double server_error = 0;       ///< 500
  double reset = 0;              ///< connection reset
  double malformed = 0;          ///< 200 with a non-JSON body
  double slow = 0;               ///< waits slow_latency

  /// Parses "429=0.1,500=0.05,reset=0.01,malformed=0.01,slow=0.01" (any subset).
  /// Throws std::invalid_argument naming the bad item.
  static FaultRates parse(std::string_view text);
  double total() const { return too_many_requests + server_error + reset + malformed + slow; }
};

struct ServerOptions {
  std::string host = "127.0.0.1";
  std::uint16_t port = 0;  ///< 0: the OS picks a free port (see Server::port())
  Latency latency = Latency::fixed(std::chrono::milliseconds(0));
  FaultRates faults{};
  std::uint64_t seed = 42;  ///< seeds latency draws and rate-based faults (with the prompt)
  int threads = 2;          ///< I/O threads
  /// What a 429 asks the client to wait (sent as Retry-After, rounded up to
  /// whole seconds, and as retry-after-ms).
  std::chrono::milliseconds retry_after{100};
  /// Latency of a "slow" fault.
  std::chrono::milliseconds slow_latency{30000};
  /// Largest request body accepted (413 beyond it).
  std::size_t max_body_bytes = 1 << 20;
  /// OpenAI-like limits on chat completions (0: none): requests and tokens
  /// per minute, each a token bucket refilled continuously that holds at most
  /// `limit_window` worth of its rate (so 6,000 RPM admits 100 requests in a
  /// burst, then 100 per second). A request costs 1 request and its prompt
  /// tokens plus max_tokens (or, without max_tokens, the reply's tokens).
  /// Over a limit: 429 with OpenAI's message, Retry-After / retry-after-ms
  /// saying when it would fit; every chat reply carries
  /// x-ratelimit-limit/remaining/reset-requests/tokens.
  double rpm = 0;
  double tpm = 0;
  std::chrono::milliseconds limit_window{1000};
  /// "stream": true replies: the first content after the request's latency,
  /// then one piece (3 characters) every stream_interval.
  std::chrono::milliseconds stream_interval{10};
  /// A connection that sends nothing for this long (a keep-alive connection
  /// between requests, or a client that connects and stays silent) is closed.
  std::chrono::milliseconds idle_timeout{60000};
  /// Once a request's first byte has arrived, its header and body must
  /// arrive within this time, or the connection is closed (slowloris).
  std::chrono::milliseconds header_timeout{10000};
};

/// Counters since start (or the last reset_stats()). Chat completions only:
/// /stats and /v1/models are not counted.
struct Stats {
  std::uint64_t requests = 0;       ///< chat completion requests received
  std::uint64_t in_flight = 0;      ///< received and not yet answered
  std::uint64_t max_in_flight = 0;  ///< the most ever in flight at once
  std::uint64_t connections = 0;    ///< TCP connections open now
  std::uint64_t max_connections = 0;
  std::uint64_t resets = 0;                ///< connections reset on purpose
  std::uint64_t abandoned = 0;             ///< requests whose client hung up before the reply
  std::map<int, std::uint64_t> by_status;  ///< HTTP status -> replies sent
};

class Server {
 public:
  /// Binds, listens and starts serving on its own threads before returning.
  /// Throws std::system_error when the address cannot be bound.
  explicit Server(ServerOptions options = {});
  /// Stops accepting, drops open connections and joins the threads.
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  std::uint16_t port() const noexcept;
  /// "http://HOST:PORT/v1", the base URL an OpenAI client wants.
  std::string base_url() const;
  Stats stats() const;
  /// Zeroes the counters, and the per-prompt request counts of count markers
  /// and rate-based faults, so the next run meets the same faults.
  void reset_stats();
  const ServerOptions& options() const noexcept;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Runs the concur-fake-llm program as a child process, for clients that need
/// the open-file limit to themselves (thousands of connections on each side)
/// or a server that cannot share their CPU accounting. Starts it with
/// `--port 0` plus `args` and waits until it listens.
class ChildServer {
 public:
  /// Throws std::runtime_error when the program cannot start or does not
  /// report a port within 10 s (its output is quoted).
  ChildServer(const std::string& program, const std::vector<std::string>& args = {});
  /// Sends SIGTERM and waits for the child.
  ~ChildServer();
  ChildServer(const ChildServer&) = delete;
  ChildServer& operator=(const ChildServer&) = delete;

  std::uint16_t port() const noexcept { return port_; }
  std::string base_url() const;
  int pid() const noexcept { return pid_; }

 private:
  int pid_ = -1;
  int out_fd_ = -1;
  std::uint16_t port_ = 0;
};

/// The reply content the server gives for a last user message `prompt`:
/// deterministic and distinct per prompt, so callers can check input order.
std::string reply_for(std::string_view prompt);

/// The latency the server gives `prompt` (last user message, markers aside)
/// under `options`: the same for the same prompt, latency and seed.
std::chrono::milliseconds latency_for(std::string_view prompt, const ServerOptions& options);

/// The "model" reported when a request names none.
inline constexpr std::string_view kDefaultModel = "concur-fake-llm";

}  // namespace concur::fake_llm
