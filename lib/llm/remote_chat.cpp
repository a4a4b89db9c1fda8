// SPDX-License-Identifier: BSL-1.0
// concur::llm::chat_call: the registered chat call, its per-process Client
// cache and the codecs that let options, requests and replies cross to a
// worker process.
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "concur/llm_call.hpp"
#include "concur/registry.hpp"

namespace concur::llm {

namespace {

// Distinct option sets a process keeps Clients for; past this the cache
// starts again (a program with this many endpoints gains little from reuse,
// and the cache must not grow without bound).
constexpr std::size_t kMaxCachedClients = 64;

// One Client per distinct options, keyed by their encoding. shared_ptr: a
// call keeps its Client alive even if the cache drops it meanwhile.
std::shared_ptr<const Client> client_for(const ClientOptions& options) {
  static std::mutex mutex;
  static std::map<std::string, std::shared_ptr<const Client>> clients;
  std::string key;
  Writer w(key);
  w.put(options);
  std::lock_guard lock(mutex);
  auto it = clients.find(key);
  if (it != clients.end()) return it->second;
  auto client = std::make_shared<const Client>(options);  // may throw ConfigError
  if (clients.size() >= kMaxCachedClients) clients.clear();
  clients.emplace(std::move(key), client);
  return client;
}

}  // namespace

Task<ChatResponse> chat_call(ClientOptions options, ChatRequest request) {
  const std::shared_ptr<const Client> client = client_for(options);
  co_return co_await client->chat(std::move(request));
}

Task<std::string> complete_call(ClientOptions options, std::string prompt) {
  const std::shared_ptr<const Client> client = client_for(options);
  co_return co_await client->complete(std::move(prompt));
}

// Each codec names every field through a structured binding, so a field
// added to one of these structs stops the build here until it crosses too.

void concur_encode(Writer& w, const Message& m) {
  const auto& [role, content] = m;
  w.put(role, content);
}
Message concur_decode(Reader& r, type_tag<Message>) {
  Message m;
  auto& [role, content] = m;
  role = r.get<std::string>();
  content = r.get<std::string>();
  return m;
}

void concur_encode(Writer& w, const ClientOptions& o) {
  const auto& [base_url, model, api_key, max_retries, initial_backoff, max_backoff, max_retry_after,
               timeout, connect_timeout, requests_per_minute, headers] = o;
  w.put(base_url, model, api_key, max_retries, initial_backoff, max_backoff, max_retry_after,
        timeout, connect_timeout, requests_per_minute, headers);
}
ClientOptions concur_decode(Reader& r, type_tag<ClientOptions>) {
  ClientOptions o;
  auto& [base_url, model, api_key, max_retries, initial_backoff, max_backoff, max_retry_after,
         timeout, connect_timeout, requests_per_minute, headers] = o;
  base_url = r.get<std::string>();
  model = r.get<std::string>();
  api_key = r.get<std::string>();
  max_retries = r.get<int>();
  initial_backoff = r.get<std::chrono::milliseconds>();
  max_backoff = r.get<std::chrono::milliseconds>();
  max_retry_after = r.get<std::chrono::milliseconds>();
  timeout = r.get<std::chrono::milliseconds>();
  connect_timeout = r.get<std::chrono::milliseconds>();
  requests_per_minute = r.get<double>();
  headers = r.get<http::Headers>();
  return o;
}

void concur_encode(Writer& w, const ChatRequest& q) {
  const auto& [messages, temperature, max_tokens, model] = q;
  w.put(messages, temperature, max_tokens, model);
}
ChatRequest concur_decode(Reader& r, type_tag<ChatRequest>) {
  ChatRequest q;
  auto& [messages, temperature, max_tokens, model] = q;
  messages = r.get<std::vector<Message>>();
  temperature = r.get<std::optional<double>>();
  max_tokens = r.get<std::optional<int>>();
  model = r.get<std::string>();
  return q;
}

void concur_encode(Writer& w, const Usage& u) {
  const auto& [prompt_tokens, completion_tokens, total_tokens] = u;
  w.put(prompt_tokens, completion_tokens, total_tokens);
}
Usage concur_decode(Reader& r, type_tag<Usage>) {
  Usage u;
  auto& [prompt_tokens, completion_tokens, total_tokens] = u;
  prompt_tokens = r.get<long>();
  completion_tokens = r.get<long>();
  total_tokens = r.get<long>();
  return u;
}

void concur_encode(Writer& w, const ChatResponse& a) {
  const auto& [id, model, content, finish_reason, usage, attempts, time_to_first_token, deltas] = a;
  w.put(id, model, content, finish_reason, usage, attempts, time_to_first_token, deltas);
}
ChatResponse concur_decode(Reader& r, type_tag<ChatResponse>) {
  ChatResponse a;
  auto& [id, model, content, finish_reason, usage, attempts, time_to_first_token, deltas] = a;
  id = r.get<std::string>();
  model = r.get<std::string>();
  content = r.get<std::string>();
  finish_reason = r.get<std::string>();
  usage = r.get<Usage>();
  attempts = r.get<int>();
  time_to_first_token = r.get<std::chrono::microseconds>();
  deltas = r.get<int>();
  return a;
}

}  // namespace concur::llm

// Runnable by name in worker processes (the processes executor).
CONCUR_REGISTER(concur::llm::chat_call);
CONCUR_REGISTER(concur::llm::complete_call);
