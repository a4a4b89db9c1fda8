// SPDX-License-Identifier: BSL-1.0
// libcurl's process-wide initialisation, done once and thread-safely before
// the first handle is created (curl_global_init is not reentrant).
#pragma once

namespace concur::io {

/// Initialises libcurl on first call; throws concur::Error if it cannot.
void ensure_curl_global();

}  // namespace concur::io
