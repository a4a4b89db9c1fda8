// SPDX-License-Identifier: BSL-1.0
#include "io/curl_exchange.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cctype>
#include <string>
#include <string_view>

#include "io/curl_global.hpp"

namespace concur::io {

namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

std::string lower(std::string_view s) {
  std::string out(s);
  std::transform(out.begin(), out.end(), out.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return out;
}

bool is_tls_error(CURLcode c) {
  switch (c) {
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_ENGINE_NOTFOUND:
    case CURLE_SSL_ENGINE_SETFAILED:
    case CURLE_SSL_CERTPROBLEM:
    case CURLE_SSL_CIPHER:
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_ENGINE_INITFAILED:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_SHUTDOWN_FAILED:
    case CURLE_SSL_CRL_BADFILE:
    case CURLE_SSL_ISSUER_ERROR:
    case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
    case CURLE_SSL_INVALIDCERTSTATUS:
    case CURLE_SSL_CLIENTCERT:
    case CURLE_USE_SSL_FAILED:
      return true;
    default:
      return false;
  }
}

// Fails for libcurl errors raised by a bad option value (never expected: the
// options are ours), so they cannot pass silently.
void check(CURLcode c, const char* what) {
  if (c != CURLE_OK) {
    throw Error(
        fmt::format("concur: curl_easy_setopt({}) failed: {}", what, curl_easy_strerror(c)));
  }
}

}  // namespace

CurlExchange::CurlExchange(http::Request request) : request_(std::move(request)) {
  ensure_curl_global();
  const auto invalid = [&](std::string_view why) {
    return http::InvalidRequest(fmt::format("{} for {} {}: {}", http::messages::kInvalid,
                                            request_.method, request_.url, why),
                                request_.url, CURLE_URL_MALFORMAT);
  };
  if (request_.url.empty()) throw invalid("the URL is empty");
  if (request_.method.empty()) throw invalid("the method is empty");
  if (request_.connect_timeout.count() < 0 || request_.timeout.count() < 0) {
    throw invalid("a timeout is negative");
  }
  for (const auto& [name, value] : request_.headers) {
    if (name.empty() || name.find_first_of(":\r\n") != std::string::npos ||
        value.find_first_of("\r\n") != std::string::npos) {
      throw invalid(fmt::format("bad header '{}'", name));
    }
    const std::string line = value.empty() ? name + ";" : name + ": " + value;
    header_list_ = curl_slist_append(header_list_, line.c_str());
  }
  // No "Expect: 100-continue" round trip before larger bodies.
  header_list_ = curl_slist_append(header_list_, "Expect:");
  response_.url = request_.url;
}

CurlExchange::~CurlExchange() { curl_slist_free_all(header_list_); }

void CurlExchange::configure(CURL* easy) {
  check(curl_easy_setopt(easy, CURLOPT_URL, request_.url.c_str()), "URL");
  // Only web protocols: a URL must never read a local file or the like.
  check(curl_easy_setopt(easy, CURLOPT_PROTOCOLS_STR, "http,https"), "PROTOCOLS_STR");
  if (request_.method == "GET") {
    check(curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L), "HTTPGET");
  } else if (request_.method == "HEAD") {
    check(curl_easy_setopt(easy, CURLOPT_NOBODY, 1L), "NOBODY");
  } else {
    if (request_.method != "POST") {
      check(curl_easy_setopt(easy, CURLOPT_CUSTOMREQUEST, request_.method.c_str()),
            "CUSTOMREQUEST");
    }
    if (request_.method == "POST" || !request_.body.empty()) {
      check(curl_easy_setopt(easy, CURLOPT_POSTFIELDSIZE_LARGE,
                             static_cast<curl_off_t>(request_.body.size())),
            "POSTFIELDSIZE_LARGE");
      check(curl_easy_setopt(easy, CURLOPT_POSTFIELDS, request_.body.data()), "POSTFIELDS");
    }
  }
  check(curl_easy_setopt(easy, CURLOPT_HTTPHEADER, header_list_), "HTTPHEADER");
  check(curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, &CurlExchange::on_body), "WRITEFUNCTION");
  check(curl_easy_setopt(easy, CURLOPT_WRITEDATA, this), "WRITEDATA");
  check(curl_easy_setopt(easy, CURLOPT_HEADERFUNCTION, &CurlExchange::on_header), "HEADERFUNCTION");
  check(curl_easy_setopt(easy, CURLOPT_HEADERDATA, this), "HEADERDATA");
  check(curl_easy_setopt(easy, CURLOPT_ERRORBUFFER, error_), "ERRORBUFFER");
  check(curl_easy_setopt(easy, CURLOPT_PREREQFUNCTION, &CurlExchange::on_send), "PREREQFUNCTION");
  check(curl_easy_setopt(easy, CURLOPT_PREREQDATA, this), "PREREQDATA");
  // Threads and signals do not mix: timeouts must not use SIGALRM.
  check(curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L), "NOSIGNAL");
  check(curl_easy_setopt(easy, CURLOPT_CONNECTTIMEOUT_MS,
                         static_cast<long>(request_.connect_timeout.count())),
        "CONNECTTIMEOUT_MS");
  check(curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, static_cast<long>(request_.timeout.count())),
        "TIMEOUT_MS");
  // Refuses a too-large body up front when its length is announced; the body
  // callback enforces the limit when it is not.
  check(curl_easy_setopt(easy, CURLOPT_MAXFILESIZE_LARGE,
                         static_cast<curl_off_t>(request_.max_body_bytes)),
        "MAXFILESIZE_LARGE");
  check(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYPEER, request_.verify_tls ? 1L : 0L),
        "SSL_VERIFYPEER");
  check(curl_easy_setopt(easy, CURLOPT_SSL_VERIFYHOST, request_.verify_tls ? 2L : 0L),
        "SSL_VERIFYHOST");
  check(curl_easy_setopt(easy, CURLOPT_ACCEPT_ENCODING, ""), "ACCEPT_ENCODING");
  // A model may think for minutes on a quiet connection: keep middleboxes
  // from dropping it, as the OpenAI SDKs do.
  check(curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L), "TCP_KEEPALIVE");
  check(curl_easy_setopt(easy, CURLOPT_TCP_KEEPIDLE, 60L), "TCP_KEEPIDLE");
  if (request_.url.starts_with("https://")) {
    // Over TLS libcurl may multiplex (HTTP/2): a burst of requests then waits
    // for the first connection instead of opening one connection each.
    check(curl_easy_setopt(easy, CURLOPT_PIPEWAIT, 1L), "PIPEWAIT");
  }
}

std::size_t CurlExchange::on_body(char* data, std::size_t size, std::size_t n, void* self) {
  auto* ex = static_cast<CurlExchange*>(self);
  const std::size_t bytes = size * n;
  if (ex->response_.body.size() + bytes > ex->request_.max_body_bytes) {
    ex->too_large_ = true;
    return 0;  // libcurl aborts the transfer with CURLE_WRITE_ERROR
  }
  ex->response_.body.append(data, bytes);
  if (ex->request_.on_body_chunk && ex->status_seen_ >= 200 && ex->status_seen_ < 300) {
    try {
      ex->request_.on_body_chunk(std::string_view(data, bytes));
    } catch (...) {
      ex->chunk_error_ = std::current_exception();
      return 0;  // aborts the transfer; finish() rethrows
    }
  }
  return bytes;
}

// Called before every send of the request, the silent re-sends included.
// A reused keep-alive connection that the server closed or reset before
// answering makes libcurl send the request again on a fresh connection,
// without backoff and unseen by any retry count. That is harmless for an
// idempotent request, but a POST may already have been acted on (a charged
// completion): it fails instead as a ConnectionError, which a caller's retry
// policy (concur::llm's, say) may then retry with backoff, counting it.
int CurlExchange::on_send(void* self, char*, char*, int, int) {
  auto* ex = static_cast<CurlExchange*>(self);
  ++ex->sends_;
  const std::string& m = ex->request_.method;
  const bool idempotent =
      m == "GET" || m == "HEAD" || m == "PUT" || m == "DELETE" || m == "OPTIONS" || m == "TRACE";
  if (ex->sends_ > 1 && !idempotent) {
    ex->resend_refused_ = true;
    return CURL_PREREQFUNC_ABORT;
  }
  return CURL_PREREQFUNC_OK;
}

std::size_t CurlExchange::on_header(char* data, std::size_t size, std::size_t n, void* self) {
  auto* ex = static_cast<CurlExchange*>(self);
  const std::size_t bytes = size * n;
  const std::string_view line(data, bytes);
  if (line.starts_with("HTTP/")) {
    // A new status line (after a 100 Continue, say): its headers replace any before.
    ex->response_.headers.clear();
    const std::size_t space = line.find(' ');
    ex->status_seen_ = 0;
    if (space != std::string_view::npos) {
      for (std::size_t i = space + 1;
           i < line.size() && std::isdigit(static_cast<unsigned char>(line[i])); ++i)
        ex->status_seen_ = ex->status_seen_ * 10 + (line[i] - '0');
    }
  } else if (const auto colon = line.find(':'); colon != std::string_view::npos) {
    ex->response_.headers.emplace_back(lower(trim(line.substr(0, colon))),
                                       std::string(trim(line.substr(colon + 1))));
  }
  return bytes;
}

http::Response CurlExchange::finish(CURL* easy, CURLcode code) {
  if (chunk_error_) std::rethrow_exception(chunk_error_);
  if (code != CURLE_OK) throw_error(code);
  long status = 0;
  curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
  response_.status = status;
  response_.sends = std::max(1, sends_);
  return std::move(response_);
}

void CurlExchange::throw_error(CURLcode code) const {
  const std::string detail = error_[0] != '\0' ? std::string(error_) : curl_easy_strerror(code);
  const auto message = [&](std::string_view kind) {
    return fmt::format("{} for {} {}: {}", kind, request_.method, request_.url, detail);
  };
  const std::string& url = request_.url;
  const int c = static_cast<int>(code);
  if (resend_refused_) {
    throw http::ConnectionError(fmt::format("{} for {} {}: {}", http::messages::kConnection,
                                            request_.method, url, http::messages::kNotResent),
                                url, c);
  }
  if (too_large_ || code == CURLE_FILESIZE_EXCEEDED) {
    throw http::BodyTooLarge(fmt::format("{} {} bytes for {} {}", http::messages::kTooLarge,
                                         request_.max_body_bytes, request_.method, url),
                             url, c);
  }
  switch (code) {
    case CURLE_COULDNT_CONNECT:
      throw http::ConnectionRefused(message(http::messages::kRefused), url, c);
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_RESOLVE_PROXY:
      throw http::DnsError(message(http::messages::kDns), url, c);
    case CURLE_OPERATION_TIMEDOUT:
      throw http::Timeout(message(http::messages::kTimeout), url, c);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
    case CURLE_BAD_FUNCTION_ARGUMENT:
      throw http::InvalidRequest(message(http::messages::kInvalid), url, c);
    default:
      break;
  }
  if (is_tls_error(code)) throw http::TlsError(message(http::messages::kTls), url, c);
  throw http::ConnectionError(message(http::messages::kConnection), url, c);
}

}  // namespace concur::io
