// SPDX-License-Identifier: BSL-1.0
// HTTP for drivers whose waits block the thread (sequential, thread_pool,
// worker processes): the exchange runs on this thread's own libcurl handle,
// kept between requests so its connections stay alive for the next one.
#pragma once

#include "concur/detail/context.hpp"
#include "concur/http.hpp"

namespace concur::io {

/// Performs `request` on the calling thread. Returns early, throwing ctx's
/// stop exception, as soon as `ctx` is cancelled or passes its deadline; the
/// aborted transfer's connection is closed before this returns.
http::Response perform_blocking(http::Request request, detail::Context& ctx);

}  // namespace concur::io
