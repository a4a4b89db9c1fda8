// SPDX-License-Identifier: BSL-1.0
// concur::http on every executor against the loopback fake LLM server: the
// exchange itself, a typed error per failure kind, cancellation and timeouts
// that abort transfers without leaking sockets, keep-alive reuse, and (on the
// suspending executors) many requests truly in flight at once, throttled to
// the open-file limit.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/http.hpp>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "support/elapsed.hpp"
#include "support/executor_params.hpp"

using namespace std::chrono_literals;
using concur::Task;
namespace http = concur::http;
namespace fl = concur::fake_llm;

namespace {

using concur::testing::seconds_since;

// The inodes of this process's open sockets.
std::set<unsigned long> own_socket_inodes() {
  std::set<unsigned long> inodes;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    char target[128];
    const ssize_t n = readlink(entry.path().c_str(), target, sizeof target - 1);
    if (n <= 0) continue;  // closed since the listing
    target[n] = '\0';
    unsigned long inode = 0;
    if (std::sscanf(target, "socket:[%lu]", &inode) == 1) inodes.insert(inode);
  }
  return inodes;
}

// How many of this process's sockets are client connections to `port` (the
// server's own accepted sockets have `port` as their local port instead).
int client_sockets_to(std::uint16_t port) {
  const std::set<unsigned long> mine = own_socket_inodes();
  int count = 0;
  for (const char* table : {"/proc/self/net/tcp", "/proc/self/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      std::istringstream fields(line);
      std::string slot, local, remote, state, queues, timer, retransmits, uid, timeout;
      unsigned long inode = 0;
      fields >> slot >> local >> remote >> state >> queues >> timer >> retransmits >> uid >>
          timeout >> inode;
      const auto colon = remote.rfind(':');
      if (colon == std::string::npos) continue;
      const unsigned long remote_port = std::stoul(remote.substr(colon + 1), nullptr, 16);
      if (remote_port == port && mine.count(inode) > 0) ++count;
    }
  }
  return count;
}

// Waits (briefly) for aborted transfers' sockets to close: on fibers the
// engine closes them on its next turn, which may be on another thread.
int settled_client_sockets(std::uint16_t port, int at_most) {
  int n = client_sockets_to(port);
  for (int i = 0; i < 200 && n > at_most; ++i) {
    std::this_thread::sleep_for(10ms);
    n = client_sockets_to(port);
  }
  return n;
}

// A port nothing listens on: bound once by us, then released.
std::uint16_t closed_port() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  close(fd);
  return ntohs(addr.sin_port);
}

// A listener whose accept queue is full: a further connect hangs (its SYN is
// dropped), which is what a connect timeout is for.
class FullListener {
 public:
  FullListener() {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    bind(listener_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    listen(listener_, 0);  // room for one connection not yet accepted
    socklen_t len = sizeof addr;
    getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len);
    port_ = ntohs(addr.sin_port);
    filler_ = socket(AF_INET, SOCK_STREAM, 0);
    connect(filler_, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  }
  ~FullListener() {
    close(filler_);
    close(listener_);
  }
  std::uint16_t port() const { return port_; }

 private:
  int listener_ = -1, filler_ = -1;
  std::uint16_t port_ = 0;
};

std::string chat_body(const std::string& prompt) {
  return R"({"model":"test","messages":[{"role":"user","content":")" + prompt + R"("}]})";
}

http::Request chat_request(const fl::Server& server, const std::string& prompt) {
  http::Request r;
  r.method = "POST";
  r.url = server.base_url() + "/chat/completions";
  r.headers = {{"Content-Type", "application/json"}};
  r.body = chat_body(prompt);
  return r;
}

Task<http::Response> send(http::Request r) { co_return co_await http::request(std::move(r)); }

// Runs one request as a whole batch and returns its error, or "" on success.
template <class Error>
std::string expect_error(concur::Executor& ex, http::Request r) {
  try {
    ex.gather(concur::call(send, std::move(r)));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

class Http : public ::testing::TestWithParam<concur::testing::ExecutorParam> {
 protected:
  std::unique_ptr<concur::Executor> ex = concur::make_executor(GetParam().config());
  fl::Server server;
};

TEST_P(Http, GetAndPostRoundTrip) {
  Task<std::pair<http::Response, http::Response>> (*both)(std::string, std::string) =
      [](std::string base, std::string body) -> Task<std::pair<http::Response, http::Response>> {
    http::Response models = co_await http::get(base + "/models");
    http::Response chat = co_await http::post(base + "/chat/completions", body);
    co_return std::make_pair(std::move(models), std::move(chat));
  };
  auto [pair] = ex->gather(concur::call(both, server.base_url(), chat_body("hello there")));
  const auto& [models, chat] = pair;
  EXPECT_EQ(models.status, 200);
  EXPECT_TRUE(models.ok());
  EXPECT_NE(models.body.find("concur-fake-llm"), std::string::npos) << models.body;
  ASSERT_TRUE(models.header("Content-Type").has_value());
  EXPECT_NE(models.header("content-type")->find("json"), std::string_view::npos);
  EXPECT_EQ(chat.status, 200);
  EXPECT_NE(chat.body.find(fl::reply_for("hello there")), std::string::npos) << chat.body;
}

TEST_P(Http, NonSuccessStatusIsAResponseNotAnError) {
  http::Request r = chat_request(server, "[[fault:500]] boom");
  auto [reply] = ex->gather(concur::call(send, r));
  EXPECT_EQ(reply.status, 500);
  EXPECT_FALSE(reply.ok());
  EXPECT_NE(reply.body.find("\"error\""), std::string::npos);
}

TEST_P(Http, RefusedConnectionIsTyped) {
  http::Request r;
  r.url = "http://127.0.0.1:" + std::to_string(closed_port()) + "/v1/models";
  const std::string what = expect_error<http::ConnectionRefused>(*ex, r);
  EXPECT_NE(what.find(http::messages::kRefused), std::string::npos) << what;
  EXPECT_NE(what.find(r.url), std::string::npos) << what;
}

TEST_P(Http, DnsFailureIsTyped) {
  http::Request r;
  r.url = "http://concur-test.invalid/v1/models";  // RFC 6761: never resolves
  r.connect_timeout = 5s;
  const std::string what = expect_error<http::DnsError>(*ex, r);
  EXPECT_NE(what.find("concur-test.invalid"), std::string::npos) << what;
}

TEST_P(Http, TlsFailureIsTyped) {
  // The server speaks plain HTTP: a TLS handshake with it must fail.
  http::Request r;
  r.url = "https://127.0.0.1:" + std::to_string(server.port()) + "/v1/models";
  const std::string what = expect_error<http::TlsError>(*ex, r);
  EXPECT_NE(what.find(http::messages::kTls), std::string::npos) << what;
  EXPECT_NE(what.find(r.url), std::string::npos) << what;
}

TEST_P(Http, RequestTimeoutIsTyped) {
  http::Request r = chat_request(server, "[[latency:5000ms]] wait");
  r.timeout = 200ms;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string what = expect_error<http::Timeout>(*ex, r);
  EXPECT_NE(what.find(http::messages::kTimeout), std::string::npos) << what;
  EXPECT_LT(seconds_since(t0), 3.0);
}

TEST_P(Http, ConnectTimeoutIsTyped) {
  FullListener full;
  http::Request r;
  r.url = "http://127.0.0.1:" + std::to_string(full.port()) + "/v1/models";
  r.connect_timeout = 200ms;
  const auto t0 = std::chrono::steady_clock::now();
  const std::string what = expect_error<http::Timeout>(*ex, r);
  EXPECT_NE(what.find(r.url), std::string::npos) << what;
  EXPECT_LT(seconds_since(t0), 3.0);
}

TEST_P(Http, OversizedBodyIsTyped) {
  http::Request r;
  r.url = server.base_url() + "/models";
  r.max_body_bytes = 16;
  const std::string what = expect_error<http::BodyTooLarge>(*ex, r);
  EXPECT_NE(what.find(http::messages::kTooLarge), std::string::npos) << what;
  EXPECT_NE(what.find(r.url), std::string::npos) << what;
}

TEST_P(Http, ResetConnectionIsAConnectionError) {
  const std::string what =
      expect_error<http::ConnectionError>(*ex, chat_request(server, "[[fault:reset]] x"));
  EXPECT_NE(what.find(server.base_url()), std::string::npos) << what;
}

// libcurl silently re-sent a POST whose reused connection the server reset
// (the server saw two requests for one call): now it fails, sent once.
TEST_P(Http, APostOnAReusedConnectionThatDiesIsNotSilentlyResent) {
  Task<std::string> (*two)(http::Request, http::Request) =
      [](http::Request warm, http::Request doomed) -> Task<std::string> {
    http::Response first = co_await http::request(std::move(warm));  // leaves a reusable connection
    if (!first.ok() || first.sends != 1) co_return "warm-up failed";
    try {
      co_await http::request(std::move(doomed));
    } catch (const http::ConnectionError& e) {
      co_return e.what();
    }
    co_return "no error";
  };
  server.reset_stats();
  auto [what] = ex->gather(concur::call(two, chat_request(server, "warm"),
                                        chat_request(server, "[[fault:reset]] once")));
  EXPECT_NE(what.find(http::messages::kNotResent), std::string::npos) << what;
  const auto stats = server.stats();
  EXPECT_EQ(stats.requests, 2u) << "the POST was sent more than once";
  EXPECT_EQ(stats.resets, 1u);
}

TEST_P(Http, InvalidRequestsAreTyped) {
  http::Request no_url;
  EXPECT_NE(expect_error<http::InvalidRequest>(*ex, no_url), "");
  http::Request ftp;
  ftp.url = "ftp://127.0.0.1/file";
  EXPECT_NE(expect_error<http::InvalidRequest>(*ex, ftp), "");
  http::Request bad_header;
  bad_header.url = server.base_url() + "/models";
  bad_header.headers = {{"X-Bad", "a\r\nInjected: yes"}};
  EXPECT_NE(expect_error<http::InvalidRequest>(*ex, bad_header), "");
}

TEST_P(Http, TaskTimeoutAbortsTransfersAndClosesTheirSockets) {
  const std::uint16_t port = server.port();
  // Warm up: every lane gets its handles and maybe an idle kept-alive connection.
  std::vector<decltype(concur::call(send, http::Request{}))> quick, slow;
  for (int i = 0; i < 8; ++i) quick.push_back(concur::call(send, chat_request(server, "warm")));
  ex->gather(quick);
  const int before = client_sockets_to(port);

  for (int i = 0; i < 12; ++i) {
    slow.push_back(concur::call(send, chat_request(server, "[[latency:10000ms]] stuck")));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto results = ex->gather_settled(slow, {.limit = 4, .timeout = 150ms});
  EXPECT_LT(seconds_since(t0), 5.0);  // 150 ms per task (at most 12 in a row), not 10 s
  for (auto& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_THROW(r.value(), concur::TimeoutError);
  }
  // 12 aborted transfers held 12 connections: all closed again.
  EXPECT_LE(settled_client_sockets(port, before), before);
}

TEST_P(Http, FailingSiblingCancelsAnInFlightTransfer) {
  const std::uint16_t port = server.port();
  const int before = client_sockets_to(port);
  Task<int> (*fail_soon)() = []() -> Task<int> {
    co_await concur::sleep_for(100ms);
    throw std::runtime_error("sibling failed");
  };
  const auto t0 = std::chrono::steady_clock::now();
  try {
    // The failing call comes first, so that sequential (which cannot overlap
    // them) fails before the slow one starts rather than after it ends.
    ex->gather(concur::call(fail_soon),
               concur::call(send, chat_request(server, "[[latency:10000ms]] long")));
    ADD_FAILURE() << "gather did not fail";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "sibling failed");
  }
  EXPECT_LT(seconds_since(t0), 5.0);
  EXPECT_LE(settled_client_sockets(port, before), before);
}

TEST_P(Http, RequestsInARowReuseOneConnection) {
  Task<int> (*many)(std::string) = [](std::string body) -> Task<int> {
    int ok = 0;
    for (int i = 0; i < 10; ++i) {
      http::Request r;
      r.method = "POST";
      r.url = body;
      r.body = chat_body("again " + std::to_string(i));
      r.headers = {{"Content-Type", "application/json"}};
      if ((co_await http::request(r)).ok()) ++ok;
    }
    co_return ok;
  };
  auto [ok] = ex->gather(concur::call(many, server.base_url() + "/chat/completions"));
  EXPECT_EQ(ok, 10);
  EXPECT_EQ(server.stats().requests, 10u);
  EXPECT_EQ(server.stats().max_connections, 1u) << "keep-alive should reuse the connection";
}

INSTANTIATE_TEST_SUITE_P(AllExecutors, Http,
                         ::testing::ValuesIn(concur::testing::executor_params()),
                         concur::testing::param_label<::testing::TestParamInfo<Http::ParamType>>);

// --- the suspending executors: many transfers on one engine -----------------

std::vector<concur::testing::ExecutorParam> suspending_params() {
  std::vector<concur::testing::ExecutorParam> out;
  for (auto& p : concur::testing::executor_params()) {
    if (p.executor == "event_loop" || p.executor == "fibers") out.push_back(p);
  }
  return out;
}

class HttpConcurrency : public ::testing::TestWithParam<concur::testing::ExecutorParam> {};

TEST_P(HttpConcurrency, ManyRequestsOverlap) {
  fl::Server server({.latency = fl::Latency::fixed(300ms)});
  auto ex = concur::make_executor(GetParam().config());
  constexpr int kRequests = 300;
  std::vector<decltype(concur::call(send, http::Request{}))> calls;
  for (int i = 0; i < kRequests; ++i) {
    calls.push_back(concur::call(send, chat_request(server, "p" + std::to_string(i))));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto replies = ex->gather(calls);
  const double wall = seconds_since(t0);
  for (int i = 0; i < kRequests; ++i) {
    ASSERT_EQ(replies[i].status, 200);
    EXPECT_NE(replies[i].body.find(fl::reply_for("p" + std::to_string(i))), std::string::npos);
  }
  // One after another would take 90 s; overlapped, about one latency.
  EXPECT_LT(wall, 10.0);
  EXPECT_GE(server.stats().max_in_flight, static_cast<std::uint64_t>(kRequests * 9 / 10));
}

// Lowers the soft open-file limit for one test and restores it after.
class ScopedFileLimit {
 public:
  explicit ScopedFileLimit(rlim_t soft) {
    getrlimit(RLIMIT_NOFILE, &saved_);
    rlimit lowered = saved_;
    lowered.rlim_cur = std::min(soft, saved_.rlim_max);
    setrlimit(RLIMIT_NOFILE, &lowered);
  }
  ~ScopedFileLimit() { setrlimit(RLIMIT_NOFILE, &saved_); }

 private:
  rlimit saved_{};
};

TEST_P(HttpConcurrency, InFlightAdaptsToTheOpenFileLimit) {
  ScopedFileLimit limit(256);
  fl::Server server({.latency = fl::Latency::fixed(20ms)});
  auto ex = concur::make_executor(GetParam().config());
  const std::size_t cap = http::max_in_flight();
  ASSERT_LT(cap, 128u);  // half of what is free under 256, less a reserve
  ASSERT_GE(cap, 4u);
  // Far more requests than descriptors: without the queue most would fail
  // with EMFILE ("Couldn't connect" / "socket failure").
  constexpr int kRequests = 1000;
  std::vector<decltype(concur::call(send, http::Request{}))> calls;
  for (int i = 0; i < kRequests; ++i)
    calls.push_back(concur::call(send, chat_request(server, "q")));
  auto results = ex->gather_settled(calls);
  int ok = 0;
  for (auto& r : results) {
    if (r.ok() && r.value().status == 200) {
      ++ok;
    } else if (!r.ok()) {
      ADD_FAILURE() << r.error().describe();
    }
  }
  EXPECT_EQ(ok, kRequests);
  EXPECT_LE(server.stats().max_in_flight, cap + 2);  // the server counts a reply's tail
}

TEST_P(HttpConcurrency, DeadlineAbortsQueuedAndRunningTransfers) {
  ScopedFileLimit limit(256);  // so most of the batch waits in the engine's queue
  fl::Server server;
  auto ex = concur::make_executor(GetParam().config());
  const std::uint16_t port = server.port();
  const int before = client_sockets_to(port);
  constexpr int kRequests = 300;
  std::vector<decltype(concur::call(send, http::Request{}))> calls;
  for (int i = 0; i < kRequests; ++i) {
    calls.push_back(concur::call(send, chat_request(server, "[[latency:10000ms]] stuck")));
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto results = ex->gather_settled(calls, {.deadline = 300ms});
  EXPECT_LT(seconds_since(t0), 5.0);
  for (auto& r : results) {
    ASSERT_FALSE(r.ok());
    EXPECT_THROW(r.value(), concur::DeadlineExceeded);
  }
  // Every started transfer closed its socket, and the queued ones did not
  // start late (a few may slip through while the stop spreads over threads).
  EXPECT_LE(settled_client_sockets(port, before), before);
  EXPECT_LE(server.stats().requests, http::max_in_flight() + 16);
  // The executor is usable again at once: nothing is left in its queue.
  auto [reply] = ex->gather(concur::call(send, chat_request(server, "after")));
  EXPECT_EQ(reply.status, 200);
}

INSTANTIATE_TEST_SUITE_P(
    Suspending, HttpConcurrency, ::testing::ValuesIn(suspending_params()),
    concur::testing::param_label<::testing::TestParamInfo<HttpConcurrency::ParamType>>);

TEST(HttpOutsideExecutor, IsAUsageError) {
  Task<http::Response> t = http::get("http://127.0.0.1:1/");
  // Awaiting needs a running task: driving it by hand must say so.
  EXPECT_THROW(
      {
        auto h = t.handle();
        h.resume();
        h.promise().take();
      },
      concur::UsageError);
}

}  // namespace
