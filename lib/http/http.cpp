// SPDX-License-Identifier: BSL-1.0
#include "concur/http.hpp"

#include <algorithm>
#include <cctype>

#include "concur/detail/driver.hpp"
#include "concur/registry.hpp"
#include "http/engine_wait.hpp"
#include "io/curl_blocking.hpp"

// The error types cross from worker processes (the processes executor) as
// themselves.
CONCUR_REGISTER_ERROR(concur::http::Error);
CONCUR_REGISTER_ERROR(concur::http::ConnectionError);
CONCUR_REGISTER_ERROR(concur::http::ConnectionRefused);
CONCUR_REGISTER_ERROR(concur::http::DnsError);
CONCUR_REGISTER_ERROR(concur::http::Timeout);
CONCUR_REGISTER_ERROR(concur::http::TlsError);
CONCUR_REGISTER_ERROR(concur::http::BodyTooLarge);
CONCUR_REGISTER_ERROR(concur::http::InvalidRequest);

namespace concur::http {

namespace {
bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}
}  // namespace

std::optional<std::string_view> Response::header(std::string_view name) const {
  for (const auto& [n, v] : headers) {
    if (iequals(n, name)) return std::string_view(v);
  }
  return std::nullopt;
}

// The driver running this task decides how the exchange waits (DESIGN §4):
// on its I/O engine if it has one, else by blocking this thread.
Task<Response> request(Request req) {
  concur::detail::Driver& driver = concur::detail::require_driver();
  concur::detail::Context* ctx = concur::detail::current_context();
  if (ctx == nullptr) throw UsageError(std::string(concur::messages::kNoExecutor));
  if (io::Engine* engine = driver.io_engine()) {
    co_return co_await detail_::EngineWait(*engine, driver, *ctx, std::move(req));
  }
  if (ctx->stop_requested()) std::rethrow_exception(ctx->stop_exception());
  co_return io::perform_blocking(std::move(req), *ctx);
}

Task<Response> get(std::string url, Headers headers) {
  Request r;
  r.url = std::move(url);
  r.headers = std::move(headers);
  co_return co_await request(std::move(r));
}

Task<Response> post(std::string url, std::string body, std::string content_type, Headers headers) {
  Request r;
  r.method = "POST";
  r.url = std::move(url);
  r.body = std::move(body);
  r.headers = std::move(headers);
  if (!content_type.empty()) r.headers.emplace_back("Content-Type", std::move(content_type));
  co_return co_await request(std::move(r));
}

}  // namespace concur::http
