// SPDX-License-Identifier: BSL-1.0
#include "remote.hpp"

#include <boost/json.hpp>

#include "shared_client.hpp"

namespace concur::batch {

namespace json = boost::json;

namespace {

// One Client per endpoint for the worker's life: its connections are reused.
const llm::Client& client_for(const std::string& base_url, const std::string& api_key,
                              std::int64_t timeout_ms) {
  llm::ClientOptions o;
  o.base_url = base_url;
  o.api_key = api_key;
  o.max_retries = 0;  // the parent retries, through its controller
  o.timeout = std::chrono::milliseconds(timeout_ms);
  return demo::shared_client(o);
}

// The headers the parent's controller reads.
bool wanted(const std::string& name) {
  return name.starts_with("x-ratelimit-") || name == "retry-after" || name == "retry-after-ms" ||
         name == "x-should-retry" || name == "x-request-id";
}

}  // namespace

Task<std::string> batch_send(std::string base_url, std::string api_key, std::string method,
                             std::string path, std::string body, std::int64_t send_at_ns,
                             std::int64_t timeout_ms) {
  const auto at = std::chrono::steady_clock::time_point(std::chrono::nanoseconds(send_at_ns));
  if (at > std::chrono::steady_clock::now()) co_await concur::sleep_until(at);
  const llm::Client& client = client_for(base_url, api_key, timeout_ms);
  llm::RawRequest r;
  r.method = std::move(method);
  r.path = std::move(path);
  r.body = std::move(body);
  r.max_retries = 0;
  json::object out;
  try {
    llm::RawResponse reply = co_await client.send(std::move(r));
    json::object headers;
    for (const auto& [n, v] : reply.headers)
      if (wanted(n)) headers[n] = v;
    out = {{"status", reply.status},
           {"headers", std::move(headers)},
           {"body", reply.body},
           {"elapsed_us", reply.elapsed.count()}};
  } catch (const http::ConnectionError& e) {
    out = {{"failure", e.what()}, {"transient", true}};
  } catch (const http::Error& e) {
    out = {{"failure", e.what()}, {"transient", false}};
  }
  co_return json::serialize(out);
}
CONCUR_REGISTER(batch_send);

RemoteReply decode_reply(const std::string& text) {
  RemoteReply r;
  const json::object o = json::parse(text).as_object();
  if (const auto* f = o.if_contains("failure")) {
    r.failure = std::string(f->as_string());
    r.transient = o.at("transient").as_bool();
    return r;
  }
  http::Response h;
  h.status = static_cast<long>(o.at("status").as_int64());
  for (const auto& [n, v] : o.at("headers").as_object())
    h.headers.emplace_back(std::string(n), std::string(v.as_string()));
  llm::RawResponse reply;
  reply.status = h.status;
  reply.rate_limits = llm::RateLimits::from(h);
  if (auto id = h.header("x-request-id")) reply.request_id = std::string(*id);
  reply.headers = std::move(h.headers);
  reply.body = std::string(o.at("body").as_string());
  reply.elapsed = std::chrono::microseconds(o.at("elapsed_us").as_int64());
  r.reply = std::move(reply);
  return r;
}

}  // namespace concur::batch
