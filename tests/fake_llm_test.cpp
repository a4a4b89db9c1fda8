// SPDX-License-Identifier: BSL-1.0
// concur-fake-llm from the outside: a plain Beast client checks the reply
// shape, determinism, every fault, the stats, and many concurrent keep-alive
// connections (in-process, and 10,000 against the program in its own process).
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/json.hpp>
#include <chrono>
#include <concur/fake_llm.hpp>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
namespace json = boost::json;
namespace fl = concur::fake_llm;
using tcp = net::ip::tcp;
using namespace std::chrono_literals;

struct Reply {
  int status = 0;
  std::string body;
  http::response<http::string_body> raw;
  json::value json() const { return json::parse(body); }
};

std::string chat_body(const std::string& user, const std::string& model = "test-model") {
  return json::serialize(json::object{
      {"model", model},
      {"messages", json::array{json::object{{"role", "system"}, {"content", "Be brief."}},
                               json::object{{"role", "user"}, {"content", user}}}}});
}

// Far beyond any reply the tests expect (the slowest is 400 ms), so a server
// that never answers fails the test with "timeout" instead of hanging it.
constexpr auto kExchangeTimeout = 20s;

// One request on a fresh connection; throws beast::system_error on a
// transport failure (e.g. a reset) or after kExchangeTimeout. Asynchronous
// on a private io_context because tcp_stream's timeout only applies to
// asynchronous operations.
Reply exchange(std::uint16_t port, http::verb verb, const std::string& target,
               const std::string& body = "") {
  net::io_context ioc;
  beast::tcp_stream stream(ioc);
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::content_type, "application/json");
  req.body() = body;
  req.prepare_payload();
  beast::flat_buffer buffer;
  Reply r;
  beast::error_code ec;
  stream.expires_after(kExchangeTimeout);
  stream.async_connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), port),
                       [&](beast::error_code cec) {
                         if ((ec = cec)) return;
                         http::async_write(stream, req, [&](beast::error_code wec, std::size_t) {
                           if ((ec = wec)) return;
                           http::async_read(stream, buffer, r.raw,
                                            [&](beast::error_code rec, std::size_t) { ec = rec; });
                         });
                       });
  ioc.run();
  if (ec) throw beast::system_error(ec);
  r.status = r.raw.result_int();
  r.body = r.raw.body();
  return r;
}

Reply chat(std::uint16_t port, const std::string& user) {
  return exchange(port, http::verb::post, "/v1/chat/completions", chat_body(user));
}

std::string content_of(const Reply& r) {
  return std::string(r.json().at("choices").at(0).at("message").at("content").as_string().c_str());
}

fl::ServerOptions quick() {
  fl::ServerOptions o;
  o.latency = fl::Latency::fixed(5ms);
  o.retry_after = 250ms;
  o.slow_latency = 400ms;
  return o;
}

TEST(FakeLlm, ChatCompletionHasTheOpenAiShape) {
  fl::Server server(quick());
  EXPECT_NE(server.port(), 0);
  EXPECT_EQ(server.base_url(), "http://127.0.0.1:" + std::to_string(server.port()) + "/v1");
  const Reply r = chat(server.port(), "Hello, how are you today?");
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.raw[http::field::content_type], "application/json");
  const auto v = r.json().as_object();
  EXPECT_TRUE(v.at("id").as_string().starts_with("chatcmpl-"));
  EXPECT_EQ(v.at("object").as_string(), "chat.completion");
  EXPECT_GT(v.at("created").to_number<std::int64_t>(), 1600000000);
  EXPECT_EQ(v.at("model").as_string(), "test-model");
  const auto& choice = v.at("choices").at(0).as_object();
  EXPECT_EQ(choice.at("index").to_number<int>(), 0);
  EXPECT_EQ(choice.at("message").at("role").as_string(), "assistant");
  EXPECT_EQ(content_of(r), fl::reply_for("Hello, how are you today?"));
  EXPECT_EQ(choice.at("finish_reason").as_string(), "stop");
  const auto& usage = v.at("usage").as_object();
  EXPECT_GT(usage.at("prompt_tokens").to_number<int>(), 0);
  EXPECT_GT(usage.at("completion_tokens").to_number<int>(), 0);
  EXPECT_EQ(
      usage.at("total_tokens").to_number<int>(),
      usage.at("prompt_tokens").to_number<int>() + usage.at("completion_tokens").to_number<int>());
}

TEST(FakeLlm, RepliesAreDeterministicAndDistinctPerPrompt) {
  EXPECT_EQ(fl::reply_for("a"), fl::reply_for("a"));
  EXPECT_NE(fl::reply_for("a"), fl::reply_for("b"));
  EXPECT_NE(fl::reply_for("a").find('a'), std::string::npos);
  fl::Server server(quick());
  EXPECT_EQ(content_of(chat(server.port(), "one")), content_of(chat(server.port(), "one")));
  EXPECT_EQ(content_of(chat(server.port(), "two")), fl::reply_for("two"));
}

TEST(FakeLlm, ModelsAndUnknownRoutes) {
  fl::Server server(quick());
  const Reply models = exchange(server.port(), http::verb::get, "/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.json().at("data").at(0).at("id").as_string(), fl::kDefaultModel);
  const Reply missing = exchange(server.port(), http::verb::get, "/v1/nothing");
  EXPECT_EQ(missing.status, 404);
  EXPECT_EQ(missing.json().at("error").at("code").as_string(), "unknown_url");
  const Reply wrong_verb = exchange(server.port(), http::verb::get, "/v1/chat/completions");
  EXPECT_EQ(wrong_verb.status, 405);
}

TEST(FakeLlm, BadRequestsGetOpenAiErrorBodies) {
  fl::Server server(quick());
  for (const std::string& body :
       {std::string("not json"), std::string(R"({"messages":[]})"),
        std::string(R"({"messages":[{"role":"system","content":"x"}]})"),
        chat_body("hi [[fault:teapot]]"), chat_body("hi [[latency:soon]]")}) {
    SCOPED_TRACE(body);
    const Reply r = exchange(server.port(), http::verb::post, "/v1/chat/completions", body);
    EXPECT_EQ(r.status, 400);
    const json::object err = r.json().at("error").as_object();
    EXPECT_EQ(err.at("type").as_string(), "invalid_request_error");
    EXPECT_FALSE(err.at("message").as_string().empty());
    EXPECT_TRUE(err.contains("code"));
  }
}

TEST(FakeLlm, TooManyRequestsCarriesRetryAfter) {
  fl::Server server(quick());
  const Reply r = chat(server.port(), "hi [[fault:429]]");
  ASSERT_EQ(r.status, 429);
  EXPECT_EQ(r.raw["retry-after-ms"], "250");
  EXPECT_EQ(r.raw[http::field::retry_after], "1");
  const json::object err = r.json().at("error").as_object();
  EXPECT_EQ(err.at("code").as_string(), "rate_limit_exceeded");
  EXPECT_FALSE(err.at("message").as_string().empty());
  EXPECT_TRUE(err.contains("type"));
  EXPECT_EQ(chat(server.port(), "hi [[fault:429]]").status, 429) << "no count: always fails";
}

TEST(FakeLlm, ServerErrorHasAnErrorBody) {
  fl::Server server(quick());
  const Reply r = chat(server.port(), "hi [[fault:500]]");
  ASSERT_EQ(r.status, 500);
  EXPECT_EQ(r.json().at("error").at("type").as_string(), "server_error");
}

TEST(FakeLlm, ResetDropsTheConnection) {
  fl::Server server(quick());
  try {
    chat(server.port(), "hi [[fault:reset]]");
    FAIL() << "expected the connection to be reset";
  } catch (const beast::system_error& e) {
    EXPECT_EQ(e.code(), net::error::connection_reset) << e.code().message();
  }
  EXPECT_EQ(server.stats().resets, 1u);
  EXPECT_EQ(server.stats().in_flight, 0u);
}

TEST(FakeLlm, MalformedIsA200WhoseBodyIsNotJson) {
  fl::Server server(quick());
  const Reply r = chat(server.port(), "hi [[fault:malformed]]");
  ASSERT_EQ(r.status, 200);
  boost::system::error_code ec;
  (void)json::parse(r.body, ec);
  EXPECT_TRUE(ec) << r.body;
}

TEST(FakeLlm, SlowAndLatencyMarkersSetTheDelay) {
  fl::Server server(quick());
  auto timed = [&](const std::string& prompt) {
    const auto t0 = std::chrono::steady_clock::now();
    const Reply r = chat(server.port(), prompt);
    EXPECT_EQ(r.status, 200) << r.body;
    return std::chrono::steady_clock::now() - t0;
  };
  EXPECT_GE(timed("hi [[fault:slow]]"), 400ms);
  EXPECT_GE(timed("hi [[latency:300ms]]"), 300ms);
  EXPECT_LT(timed("hi [[latency:0ms]]"), 300ms);
}

TEST(FakeLlm, AClientThatHangsUpStopsCountingAsInFlight) {
  fl::Server server(quick());
  {
    net::io_context ioc;
    beast::tcp_stream stream(ioc);
    stream.connect(tcp::endpoint(net::ip::make_address("127.0.0.1"), server.port()));
    http::request<http::string_body> req(http::verb::post, "/v1/chat/completions", 11);
    req.set(http::field::host, "127.0.0.1");
    req.body() = chat_body("give up on me [[fault:slow]]");
    req.prepare_payload();
    http::write(stream, req);
    for (int i = 0; i < 200 && server.stats().in_flight == 0; ++i) std::this_thread::sleep_for(5ms);
    EXPECT_EQ(server.stats().in_flight, 1u);
  }  // the client closes its connection long before the 400 ms reply
  for (int i = 0; i < 200 && server.stats().connections > 0; ++i) std::this_thread::sleep_for(5ms);
  const auto s = server.stats();
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.abandoned, 1u);
  EXPECT_EQ(s.connections, 0u) << "the server closes its side at once";
  EXPECT_TRUE(s.by_status.empty());
}

TEST(FakeLlm, CountedFaultFailsTheFirstNThenSucceeds) {
  fl::Server server(quick());
  const std::string prompt = "retry me [[fault:429:2]]";
  EXPECT_EQ(chat(server.port(), prompt).status, 429);
  EXPECT_EQ(chat(server.port(), "another [[fault:429:2]]").status, 429) << "counted per prompt";
  EXPECT_EQ(chat(server.port(), prompt).status, 429);
  const Reply ok = chat(server.port(), prompt);
  ASSERT_EQ(ok.status, 200);
  EXPECT_EQ(content_of(ok), fl::reply_for(prompt));
  EXPECT_EQ(chat(server.port(), "boom [[fault:500:1]]").status, 500);
  EXPECT_EQ(chat(server.port(), "boom [[fault:500:1]]").status, 200);
}

TEST(FakeLlm, LatencyIsDrawnPerPromptFromTheSeed) {
  fl::ServerOptions o;
  o.latency = fl::Latency::uniform(100ms, 300ms);
  std::set<long long> seen;
  for (int i = 0; i < 50; ++i) {
    const std::string p = "prompt " + std::to_string(i);
    const auto d = fl::latency_for(p, o);
    EXPECT_EQ(d, fl::latency_for(p, o)) << "same prompt, same seed: same latency";
    EXPECT_GE(d, 100ms);
    EXPECT_LE(d, 300ms);
    seen.insert(d.count());
  }
  EXPECT_GT(seen.size(), 10u) << "different prompts draw different latencies";
  auto other = o;
  other.seed = 43;
  EXPECT_NE(fl::latency_for("prompt 1", o) + fl::latency_for("prompt 2", o),
            fl::latency_for("prompt 1", other) + fl::latency_for("prompt 2", other));
  o.latency = fl::Latency::log_normal(1000ms, 0.5);
  double sum = 0;
  for (int i = 0; i < 200; ++i)
    sum += static_cast<double>(fl::latency_for(std::to_string(i), o).count());
  EXPECT_GT(sum / 200, 800);  // the mean of a log-normal is above its median
  EXPECT_LT(sum / 200, 1500);
  o.latency = fl::Latency::fixed(60ms);
  fl::Server server(o);
  const auto t0 = std::chrono::steady_clock::now();
  EXPECT_EQ(chat(server.port(), "timed").status, 200);
  EXPECT_GE(std::chrono::steady_clock::now() - t0, 60ms);
}

TEST(FakeLlm, RandomFaultsFollowTheSeed) {
  auto statuses = [](std::uint64_t seed) {
    auto o = quick();
    o.latency = fl::Latency::uniform(0ms, 2ms);
    o.faults.too_many_requests = 0.3;
    o.faults.server_error = 0.3;
    o.seed = seed;
    fl::Server server(o);
    std::vector<int> out;
    for (int i = 0; i < 30; ++i) out.push_back(chat(server.port(), "q" + std::to_string(i)).status);
    return out;
  };
  const auto a = statuses(7);
  EXPECT_EQ(a, statuses(7));
  EXPECT_NE(std::count(a.begin(), a.end(), 200), 30);
  EXPECT_NE(std::count(a.begin(), a.end(), 200), 0);
}

// Rate-based faults belong to the input, not to the arrival order: two
// servers sent the same prompts in opposite orders fail the same prompts, and
// so does one server after reset_stats(). A retry (the second request with a
// prompt) is a draw of its own.
TEST(FakeLlm, RandomFaultsArePerPromptAndAttempt) {
  auto o = quick();
  o.latency = fl::Latency::fixed(0ms);
  o.faults.server_error = 0.5;
  o.seed = 11;
  constexpr int kPrompts = 30;
  auto run = [](fl::Server& server, bool reversed) {
    std::map<std::string, std::vector<int>> by_prompt;  // prompt -> status per attempt
    for (int attempt = 0; attempt < 2; ++attempt) {
      for (int k = 0; k < kPrompts; ++k) {
        const std::string p = "q" + std::to_string(reversed ? kPrompts - 1 - k : k);
        by_prompt[p].push_back(chat(server.port(), p).status);
      }
    }
    return by_prompt;
  };
  fl::Server forward(o), backward(o);
  const auto a = run(forward, false);
  EXPECT_EQ(a, run(backward, true)) << "faults must not depend on the arrival order";
  forward.reset_stats();
  EXPECT_EQ(a, run(forward, true)) << "after reset_stats() the same inputs fail again";
  int failed_first = 0, retry_differs = 0;
  for (const auto& [prompt, statuses] : a) {
    failed_first += statuses[0] == 500 ? 1 : 0;
    retry_differs += statuses[0] != statuses[1] ? 1 : 0;
  }
  EXPECT_GT(failed_first, 0);
  EXPECT_LT(failed_first, kPrompts);
  EXPECT_GT(retry_differs, 0) << "a retry must be a fresh draw, not the first one again";
}

TEST(FakeLlm, StatsCountRequestsAndStatuses) {
  fl::Server server(quick());
  chat(server.port(), "a");
  chat(server.port(), "b");
  chat(server.port(), "c [[fault:429]]");
  auto s = server.stats();
  EXPECT_EQ(s.requests, 3u);
  EXPECT_EQ(s.in_flight, 0u);
  EXPECT_EQ(s.max_in_flight, 1u);
  EXPECT_EQ(s.by_status[200], 2u);
  EXPECT_EQ(s.by_status[429], 1u);
  const Reply r = exchange(server.port(), http::verb::get, "/stats");
  ASSERT_EQ(r.status, 200);
  const auto v = r.json().as_object();
  EXPECT_EQ(v.at("requests").to_number<int>(), 3);
  EXPECT_EQ(v.at("by_status").at("200").to_number<int>(), 2);
  EXPECT_EQ(exchange(server.port(), http::verb::post, "/stats/reset").status, 200);
  s = server.stats();
  EXPECT_EQ(s.requests, 0u);
  EXPECT_TRUE(s.by_status.empty());
}

TEST(FakeLlm, OptionTextsParseOrNameTheProblem) {
  EXPECT_EQ(fl::Latency::parse("200ms").describe(), "fixed:200ms");
  EXPECT_EQ(fl::Latency::parse("1.5s").base, 1500ms);
  EXPECT_EQ(fl::Latency::parse("uniform:100ms..500ms").describe(), "uniform:100ms..500ms");
  EXPECT_EQ(fl::Latency::parse("lognormal:1500ms,0.4").describe(), "lognormal:1500ms,0.4");
  EXPECT_THROW(fl::Latency::parse("gaussian:5ms"), std::invalid_argument);
  EXPECT_THROW(fl::Latency::parse("uniform:5ms..1ms"), std::invalid_argument);
  try {
    fl::Latency::parse("abc");
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("'abc'"), std::string::npos) << e.what();
  }
  const auto r = fl::FaultRates::parse("429=0.1, reset=0.05");
  EXPECT_DOUBLE_EQ(r.too_many_requests, 0.1);
  EXPECT_DOUBLE_EQ(r.reset, 0.05);
  EXPECT_THROW(fl::FaultRates::parse("418=0.1"), std::invalid_argument);
  EXPECT_THROW(fl::FaultRates::parse("429=1.5"), std::invalid_argument);
  EXPECT_THROW(fl::FaultRates::parse("429=0.6,500=0.6"), std::invalid_argument);
}

// N clients on one thread, each on its own keep-alive connection, all
// waiting at once; every connection stays open until all have their reply.
struct ManyClients {
  struct Conn {
    explicit Conn(net::io_context& ioc) : stream(ioc) {}
    beast::tcp_stream stream;
    http::request<http::string_body> req;
    http::response<http::string_body> res;
    beast::flat_buffer buffer;
    std::string prompt;
  };

  ManyClients(std::uint16_t port, int n) {
    const tcp::endpoint at(net::ip::make_address("127.0.0.1"), port);
    for (int i = 0; i < n; ++i) {
      auto c = std::make_unique<Conn>(ioc);
      c->prompt = "client " + std::to_string(i) + " [[latency:800ms]]";
      c->req = {http::verb::post, "/v1/chat/completions", 11};
      c->req.set(http::field::host, "127.0.0.1");
      c->req.body() = chat_body(c->prompt);
      c->req.prepare_payload();
      Conn* raw = c.get();
      raw->stream.async_connect(at, [this, raw](beast::error_code ec) {
        if (ec) return fail(ec);
        http::async_write(raw->stream, raw->req, [this, raw](beast::error_code wec, std::size_t) {
          if (wec) return fail(wec);
          http::async_read(raw->stream, raw->buffer, raw->res,
                           [this, raw](beast::error_code rec, std::size_t) {
                             if (rec) return fail(rec);
                             if (raw->res.result_int() == 200 &&
                                 json::parse(raw->res.body())
                                         .at("choices")
                                         .at(0)
                                         .at("message")
                                         .at("content")
                                         .as_string() == fl::reply_for(raw->prompt))
                               ++ok;
                             else
                               ++failed;
                           });
        });
      });
      conns.push_back(std::move(c));
    }
  }
  void fail(beast::error_code ec) {
    ++failed;
    if (first_error.empty()) first_error = ec.message();
  }

  net::io_context ioc{1};
  std::vector<std::unique_ptr<Conn>> conns;
  int ok = 0;
  int failed = 0;
  std::string first_error;
};

// --- idle and slow clients, and running out of descriptors ----------------

// A plain blocking loopback socket (-1 if it cannot be made or connected).
int connect_raw(std::uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return -1;
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// True once the server has closed `fd` (EOF or reset), false after `limit`.
bool closed_within(int fd, std::chrono::milliseconds limit) {
  const auto end = std::chrono::steady_clock::now() + limit;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        end - std::chrono::steady_clock::now());
    if (left.count() <= 0) return false;
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[512];
    const auto n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) return true;
  }
}

TEST(FakeLlm, ASilentConnectionIsClosedAfterTheIdleTimeout) {
  auto o = quick();
  o.idle_timeout = 200ms;
  fl::Server server(o);
  const int fd = connect_raw(server.port());
  ASSERT_GE(fd, 0);
  EXPECT_TRUE(closed_within(fd, 10s)) << "an idle connection was kept open";
  ::close(fd);
  // A keep-alive connection between requests too: one exchange, then silence.
  const int ka = connect_raw(server.port());
  ASSERT_GE(ka, 0);
  const std::string get = "GET /v1/models HTTP/1.1\r\nHost: x\r\n\r\n";
  ASSERT_EQ(::send(ka, get.data(), get.size(), 0), static_cast<ssize_t>(get.size()));
  EXPECT_TRUE(closed_within(ka, 10s));
  ::close(ka);
}

// 500 slowloris connections were never closed: a header trickling in a byte
// at a time now has header_timeout in all, however often its bytes come.
TEST(FakeLlm, ASlowHeaderIsClosedAfterTheHeaderTimeout) {
  auto o = quick();
  o.idle_timeout = 60s;
  o.header_timeout = 300ms;
  fl::Server server(o);
  const int fd = connect_raw(server.port());
  ASSERT_GE(fd, 0);
  const std::string start = "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n";
  ASSERT_EQ(::send(fd, start.data(), start.size(), 0), static_cast<ssize_t>(start.size()));
  bool closed = false;
  // Trickle a header byte every 50 ms for up to 10 s, each well within the idle timeout.
  for (int i = 0; i < 200 && !closed; ++i) {
    closed = closed_within(fd, 50ms);
    if (!closed) ::send(fd, "X", 1, MSG_NOSIGNAL);
  }
  EXPECT_TRUE(closed) << "a slowloris header was kept open";
  ::close(fd);
}

// The descriptor limit that leaves exactly `free` descriptors to allocate
// (the kernel hands out the lowest free number, holes included).
rlim_t limit_leaving(int free) {
  std::set<long> open;
  if (DIR* d = ::opendir("/proc/self/fd")) {
    while (dirent* e = ::readdir(d)) {
      if (e->d_name[0] != '.') open.insert(std::atol(e->d_name));
    }
    open.erase(::dirfd(d));  // free again in a moment
    ::closedir(d);
  }
  long fd = 0;
  for (int left = free; left > 0; ++fd) {
    if (open.count(fd) == 0) --left;
  }
  return static_cast<rlim_t>(fd);
}

// At a low descriptor limit, silent connections took every descriptor and
// locked every other client out until they timed out: now the server closes
// the oldest idle one when accept() fails with EMFILE, and serves the newcomer.
TEST(FakeLlm, KeepsServingWhenDescriptorsRunOut) {
  auto o = quick();
  o.idle_timeout = 60s;  // far beyond the test: only shedding can free a descriptor
  o.threads = 1;
  fl::Server server(o);
  constexpr int kIdle = 20;
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &old), 0);
  // Room for the idle clients and their accepted ends, plus the newcomer's
  // own socket, and nothing for the server to accept it with.
  rlimit low = old;
  low.rlim_cur = limit_leaving(2 * kIdle + 1);
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &low), 0);
  std::vector<int> idle;
  for (int i = 0; i < kIdle; ++i) {
    const int fd = connect_raw(server.port());
    if (fd >= 0) idle.push_back(fd);
  }
  const auto t0 = std::chrono::steady_clock::now();
  while (server.stats().connections < idle.size() && std::chrono::steady_clock::now() - t0 < 10s) {
    std::this_thread::sleep_for(5ms);
  }
  const int newcomer = connect_raw(server.port());
  std::string reply;
  if (newcomer >= 0) {
    const std::string get = "GET /v1/models HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    ::send(newcomer, get.data(), get.size(), MSG_NOSIGNAL);
    const auto end = std::chrono::steady_clock::now() + 10s;
    while (std::chrono::steady_clock::now() < end) {
      pollfd p{newcomer, POLLIN, 0};
      if (::poll(&p, 1, 100) <= 0) continue;
      char buf[1024];
      const auto n = ::recv(newcomer, buf, sizeof buf, 0);
      if (n <= 0) break;
      reply.append(buf, static_cast<std::size_t>(n));
    }
    ::close(newcomer);
  }
  for (int fd : idle) ::close(fd);
  ::setrlimit(RLIMIT_NOFILE, &old);
  ASSERT_EQ(idle.size(), static_cast<std::size_t>(kIdle));
  ASSERT_GE(newcomer, 0);
  EXPECT_EQ(reply.rfind("HTTP/1.1 200", 0), 0u) << "the newcomer was not served: " << reply;
  // The server goes on serving normally afterwards.
  EXPECT_EQ(exchange(server.port(), http::verb::get, "/v1/models").status, 200);
}

TEST(FakeLlm, HoldsThousandsOfConcurrentKeepAliveConnectionsInProcess) {
  constexpr int n = 2000;  // both ends in one process: 2n descriptors
  fl::Server server(quick());
  ManyClients clients(server.port(), n);
  clients.ioc.run();
  EXPECT_EQ(clients.ok, n) << clients.first_error;
  const auto s = server.stats();
  EXPECT_EQ(s.connections, static_cast<std::uint64_t>(n)) << "keep-alive connections stay open";
  EXPECT_EQ(s.max_connections, static_cast<std::uint64_t>(n));
  EXPECT_GT(s.max_in_flight, static_cast<std::uint64_t>(n / 2)) << "replies wait on timers";
  EXPECT_EQ(s.in_flight, 0u);
}

TEST(FakeLlm, ProgramHoldsTenThousandConnections) {
  constexpr int n = 10000;
  fl::ChildServer child(CONCUR_FAKE_LLM_BIN, {"--threads", "2"});
  ManyClients clients(child.port(), n);
  clients.ioc.run();
  EXPECT_EQ(clients.ok, n) << clients.first_error;
  const Reply r = exchange(child.port(), http::verb::get, "/stats");
  ASSERT_EQ(r.status, 200);
  const auto v = r.json().as_object();
  EXPECT_EQ(v.at("requests").to_number<int>(), n);
  EXPECT_GE(v.at("connections").to_number<int>(), n) << r.body;
  EXPECT_GT(v.at("max_in_flight").to_number<int>(), n / 2) << r.body;
}

TEST(FakeLlm, ChildServerReportsAProgramThatCannotStart) {
  EXPECT_THROW(fl::ChildServer("/nonexistent/concur-fake-llm"), std::runtime_error);
}

}  // namespace
