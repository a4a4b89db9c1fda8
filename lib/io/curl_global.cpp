// SPDX-License-Identifier: BSL-1.0
#include "io/curl_global.hpp"

#include <curl/curl.h>

#include <string>

#include "concur/errors.hpp"

namespace concur::io {

void ensure_curl_global() {
  // A function-local static is initialised exactly once, even when threads
  // race here. There is deliberately no curl_global_cleanup: worker threads
  // (oneTBB's) may still hold their per-thread handles while statics are
  // destroyed at exit, and cleaning up under them would crash.
  static const CURLcode code = curl_global_init(CURL_GLOBAL_ALL);
  if (code != CURLE_OK) {
    throw Error(std::string("concur: curl_global_init failed: ") + curl_easy_strerror(code));
  }
}

}  // namespace concur::io
