// SPDX-License-Identifier: BSL-1.0
// concur::http: one request/response API for every executor (DESIGN §6).
//
// ```cpp
// #include <string>
//
// concur::Task<std::string> fetch(std::string url) {
//   concur::http::Response r = co_await concur::http::get(url);
//   co_return r.body;
// }
// ```
//
// An HTTP exchange is a library wait: the task asks the current driver how to
// wait (DESIGN §4). On event_loop and fibers the transfer runs on the
// executor's I/O engine through libcurl's multi-socket interface, so thousands
// of requests share one thread; on sequential, thread_pool and inside worker
// processes it blocks the calling thread on a libcurl handle reused per thread.
// Either way connections are kept alive and reused, and the exchange is a
// cancellation point: a cancelled task (fail-fast sibling, per-task timeout,
// batch deadline) aborts its transfer at once and closes its socket.
//
// Any HTTP status is a Response; only a transfer that produced no complete
// response (refused, DNS, timeout, TLS, reset, oversized body, bad URL) throws,
// with a type from the hierarchy below and a message naming the URL.
#pragma once

#include <chrono>
#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "concur/errors.hpp"
#include "concur/task.hpp"

namespace concur::http {

using namespace std::chrono_literals;

/// Header lines in the order given or received; names compare case-insensitively.
using Headers = std::vector<std::pair<std::string, std::string>>;

struct Request {
  std::string method = "GET";
  std::string url;
  Headers headers;
  std::string body;
  /// Time allowed to establish the connection (TCP and TLS).
  std::chrono::milliseconds connect_timeout = 10s;
  /// Time allowed for the whole exchange; zero means no limit of its own (the
  /// task's timeout and the batch deadline still apply).
  std::chrono::milliseconds timeout = 0ms;
  /// A response body larger than this fails with BodyTooLarge.
  std::size_t max_body_bytes = 64u << 20;
  /// Verify the server's TLS certificate and host name.
  bool verify_tls = true;
  /// If set, called with each piece of a 2xx response's body as it arrives
  /// (server-sent events, streamed completions), in order, never concurrently
  /// for one exchange, on the thread that runs the transfer (the event loop,
  /// a fibers thread, or the task's own thread when the wait blocks). Not
  /// called once the task has stopped waiting. It must be quick and must not
  /// wait; an exception from it aborts the transfer and is rethrown by
  /// request(). The body is still collected in Response::body.
  std::function<void(std::string_view)> on_body_chunk;
};

struct Response {
  long status = 0;
  /// Headers of the final response (after any 1xx), names lower-cased.
  Headers headers;
  std::string body;
  /// The URL requested (for messages).
  std::string url;
  /// How many times the request went out: above 1 when libcurl re-sent an
  /// idempotent request (GET, HEAD, PUT, DELETE, ...) because the reused
  /// connection it first went out on died unanswered. A POST is never re-sent
  /// that way: it fails with a ConnectionError (messages::kNotResent).
  int sends = 1;

  bool ok() const noexcept { return status >= 200 && status < 300; }
  /// The first header named `name` (any case), if present.
  std::optional<std::string_view> header(std::string_view name) const;
};

/// Performs `request` on the current executor. Throws an http::Error for a
/// transfer that failed, concur::Cancelled (or TimeoutError, DeadlineExceeded)
/// if the task stopped meanwhile, concur::UsageError outside any executor.
Task<Response> request(Request request);

/// GET `url`.
Task<Response> get(std::string url, Headers headers = {});
/// POST `body` to `url`; `content_type` becomes the Content-Type header.
Task<Response> post(std::string url, std::string body,
                    std::string content_type = "application/json", Headers headers = {});

/// How many transfers may be in flight at once on one I/O engine (event_loop,
/// fibers); more wait in a queue. Derived from the process's open-file limit
/// (RLIMIT_NOFILE) so that queued requests never fail with EMFILE: half the
/// descriptors free now, less a reserve (an in-process peer needs the rest).
std::size_t max_in_flight();

// --- errors --------------------------------------------------------------

namespace messages {
inline constexpr std::string_view kRefused = "connection refused";
inline constexpr std::string_view kDns = "cannot resolve host";
inline constexpr std::string_view kTimeout = "timed out";
inline constexpr std::string_view kTls = "TLS failure";
inline constexpr std::string_view kTooLarge = "response body larger than";
inline constexpr std::string_view kInvalid = "invalid request";
inline constexpr std::string_view kConnection = "connection failed";
/// ConnectionError: a non-idempotent request whose reused connection died
/// before any reply; libcurl would have re-sent it silently.
inline constexpr std::string_view kNotResent =
    "the reused connection closed before any reply, and a request that is not idempotent is not "
    "re-sent behind the caller's back";
}  // namespace messages

/// Base of every HTTP transfer failure. what() is "<kind> for <METHOD> <url>: <detail>".
class Error : public concur::Error {
 public:
  Error(const std::string& message, std::string url, int curl_code)
      : concur::Error(message), url_(std::move(url)), curl_code_(curl_code) {}
  /// Only the message: how an error raised in a worker process is rebuilt in
  /// the parent (url() is then empty; the message still names the URL).
  explicit Error(const std::string& message) : concur::Error(message), curl_code_(0) {}
  const std::string& url() const noexcept { return url_; }
  /// libcurl's CURLcode, for diagnostics.
  int curl_code() const noexcept { return curl_code_; }

 private:
  std::string url_;
  int curl_code_;
};

/// The exchange failed before a complete response arrived: worth retrying.
/// Thrown as is for resets, empty replies and other transport failures.
class ConnectionError : public Error {
 public:
  using Error::Error;
};
/// Nothing listens at the host and port (or it is unreachable).
class ConnectionRefused : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
/// The host name did not resolve.
class DnsError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
/// The connect timeout or the request's own timeout passed. (A task timeout
/// or batch deadline is concur::TimeoutError / DeadlineExceeded instead.)
class Timeout : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
/// The TLS handshake or certificate verification failed.
class TlsError : public ConnectionError {
 public:
  using ConnectionError::ConnectionError;
};
/// The response body exceeded Request::max_body_bytes.
class BodyTooLarge : public Error {
 public:
  using Error::Error;
};
/// The request itself is unusable (malformed URL, unsupported scheme, ...).
class InvalidRequest : public Error {
 public:
  using Error::Error;
};

}  // namespace concur::http
