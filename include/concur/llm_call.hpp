// SPDX-License-Identifier: BSL-1.0
// concur::llm::chat_call: chat completions as registered calls, so the same
// gather runs on every executor, `processes` included.
//
// A Client lives in one process (it holds a rate limiter and settings checked
// at construction), so a call taking `const Client*` cannot cross to a worker
// process: the processes executor rejects it with a UsageError. chat_call
// takes what can cross instead, the ClientOptions and the request (codecs
// below), and calls through a Client built from those options in the
// process that runs it. Each process keeps one Client per distinct options
// and reuses it, so `requests_per_minute` is shared by the calls of one
// process (on `processes`: per worker).
//
// ```cpp
// #include <concur/concur.hpp>
//
// #include <string>
// #include <vector>
//
// namespace llm = concur::llm;
//
// std::vector<concur::Result<llm::ChatResponse>> translate_all(
//     concur::Executor& ex, const std::vector<std::string>& texts) {
//   llm::ClientOptions options;
//   options.base_url = "http://127.0.0.1:8000/v1";
//   std::vector<decltype(concur::call(llm::chat_call, options, llm::ChatRequest()))> calls;
//   for (const std::string& text : texts) {
//     llm::ChatRequest request;
//     request.messages = {{"system", "Translate into Japanese."}, {"user", text}};
//     calls.push_back(concur::call(llm::chat_call, options, std::move(request)));
//   }
//   return ex.gather_settled(calls, {.limit = 64});  // on any executor, processes too
// }
// ```
//
// The API key crosses with the options when it is set in them; left empty,
// each process reads its own OPENAI_API_KEY (workers inherit the parent's
// environment).
#pragma once

#include <string>

#include "concur/codec.hpp"
#include "concur/llm.hpp"
#include "concur/task.hpp"

namespace concur::llm {

/// POST {options.base_url}/chat/completions with `request`, through this
/// process's Client for `options` (built at the first call): the same
/// retries and errors as Client::chat. Registered (CONCUR_REGISTER) as
/// "concur::llm::chat_call". Throws ConfigError for unusable options.
Task<ChatResponse> chat_call(ClientOptions options, ChatRequest request);
/// One user message; the reply text (Client::complete). Registered too.
Task<std::string> complete_call(ClientOptions options, std::string prompt);

// Codecs (concur/codec.hpp), found by argument-dependent lookup: every field
// crosses.
void concur_encode(Writer& w, const Message& m);
Message concur_decode(Reader& r, type_tag<Message>);
void concur_encode(Writer& w, const ClientOptions& o);
ClientOptions concur_decode(Reader& r, type_tag<ClientOptions>);
void concur_encode(Writer& w, const ChatRequest& q);
ChatRequest concur_decode(Reader& r, type_tag<ChatRequest>);
void concur_encode(Writer& w, const Usage& u);
Usage concur_decode(Reader& r, type_tag<Usage>);
void concur_encode(Writer& w, const ChatResponse& a);
ChatResponse concur_decode(Reader& r, type_tag<ChatResponse>);

}  // namespace concur::llm
