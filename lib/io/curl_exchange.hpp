// SPDX-License-Identifier: BSL-1.0
// One HTTP exchange as libcurl sees it, shared by both ways of running it
// (the engine's multi-socket loop and the blocking per-thread handle): the
// options set on an easy handle, the callbacks that collect the response,
// and the mapping of libcurl's result to a Response or a typed http::Error.
#pragma once

#include <curl/curl.h>

#include <exception>

#include "concur/http.hpp"

namespace concur::io {

class CurlExchange {
 public:
  /// Throws http::InvalidRequest for a request that cannot be sent.
  explicit CurlExchange(http::Request request);
  ~CurlExchange();
  CurlExchange(const CurlExchange&) = delete;
  CurlExchange& operator=(const CurlExchange&) = delete;

  /// Sets every option of this exchange on `easy` (fresh or curl_easy_reset).
  void configure(CURL* easy);
  /// Turns libcurl's result for `easy` into the response, or throws the
  /// matching http::Error. Call once, after the transfer ended.
  http::Response finish(CURL* easy, CURLcode code);

  const http::Request& request() const noexcept { return request_; }

 private:
  static std::size_t on_body(char* data, std::size_t size, std::size_t n, void* self);
  static std::size_t on_header(char* data, std::size_t size, std::size_t n, void* self);
  static int on_send(void* self, char* conn_primary_ip, char* conn_local_ip, int conn_primary_port,
                     int conn_local_port);
  [[noreturn]] void throw_error(CURLcode code) const;

  http::Request request_;
  http::Response response_;
  curl_slist* header_list_ = nullptr;
  bool too_large_ = false;
  long status_seen_ = 0;            // from the latest status line, for on_body_chunk
  std::exception_ptr chunk_error_;  // thrown by on_body_chunk
  // Times the request was about to go out on a connection: libcurl silently
  // sends it again on a fresh one when a reused connection dies unanswered.
  int sends_ = 0;
  bool resend_refused_ = false;  // a non-idempotent request was not re-sent
  char error_[CURL_ERROR_SIZE] = {};
};

}  // namespace concur::io
