// SPDX-License-Identifier: BSL-1.0
// One llm::Client per distinct options for the life of the process (a worker
// process makes its own): a client is shareable between tasks, and keeping
// one keeps its connections, rate limiter and settings in one place. The
// demos' registered calls take plain values and look their client up here.
#pragma once

#include <concur/llm.hpp>

namespace concur::demo {

/// The process's client for `options` (made on first use). Options that
/// differ in base_url, api_key, model, max_retries, timeout or
/// requests_per_minute get different clients.
const llm::Client& shared_client(const llm::ClientOptions& options);

}  // namespace concur::demo
