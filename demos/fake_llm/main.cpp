// SPDX-License-Identifier: BSL-1.0
// concur-fake-llm: the fake OpenAI-compatible server as a program.
//
//   concur-fake-llm --port 8080 --latency lognormal:1500ms,0.5 --fault-rate 429=0.05
//   concur-fake-llm --rpm 6000 --tpm 300000      OpenAI-like limits (429 + x-ratelimit-*)
//
// Prints "listening on http://HOST:PORT/v1" on stdout once it accepts
// connections (so a parent that passed --port 0 can read the port), then
// serves until SIGINT or SIGTERM and prints its final /stats line.
#include <pthread.h>
#include <CLI/CLI.hpp>
#include <concur/fake_llm.hpp>
#include <csignal>
#include <cstdio>
#include <stdexcept>
#include <string>

namespace fl = concur::fake_llm;

int main(int argc, char** argv) {
  CLI::App app{"concur-fake-llm: a loopback OpenAI-compatible chat-completions server"};
  fl::ServerOptions opts;
  std::string latency = "0ms";
  std::string faults;
  long long retry_after_ms = opts.retry_after.count();
  long long slow_ms = opts.slow_latency.count();
  long long idle_ms = opts.idle_timeout.count();
  long long header_ms = opts.header_timeout.count();
  app.add_option("--host", opts.host, "address to listen on")->capture_default_str();
  app.add_option("-p,--port", opts.port, "port (0 = any free port)")->capture_default_str();
  app.add_option("--latency", latency,
                 "reply latency: 200ms | fixed:200ms | uniform:100ms..500ms | "
                 "lognormal:MEDIAN,SIGMA (e.g. lognormal:1500ms,0.5)")
      ->capture_default_str();
  app.add_option("--seed", opts.seed, "seed of latency draws and random faults")
      ->capture_default_str();
  app.add_option("--fault-rate", faults,
                 "random faults: KIND=RATE,... with KIND 429|500|reset|malformed|slow "
                 "(e.g. 429=0.05,reset=0.01); drawn per prompt and attempt from --seed, so "
                 "the same prompts fail whatever the arrival order");
  app.add_option("--threads", opts.threads, "I/O threads")
      ->check(CLI::Range(1, 64))
      ->capture_default_str();
  app.add_option("--retry-after-ms", retry_after_ms, "what a 429 asks the client to wait")
      ->check(CLI::Range(0LL, 3600000LL))
      ->capture_default_str();
  app.add_option("--slow-ms", slow_ms, "latency of a 'slow' fault")
      ->check(CLI::Range(0LL, 3600000LL))
      ->capture_default_str();
  long long window_ms = opts.limit_window.count();
  long long stream_interval_ms = opts.stream_interval.count();
  app.add_option("--rpm", opts.rpm, "requests per minute before 429s (0: no limit), like OpenAI's")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tpm", opts.tpm, "tokens per minute before 429s (0: no limit), like OpenAI's")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--limit-window-ms", window_ms,
                 "the --rpm/--tpm buckets hold this long's worth of their rate (the burst)")
      ->check(CLI::Range(1LL, 60000LL))
      ->capture_default_str();
  app.add_option("--stream-interval-ms", stream_interval_ms,
                 "between the pieces of a streamed (\"stream\": true) reply")
      ->check(CLI::Range(0LL, 60000LL))
      ->capture_default_str();
  app.add_option("--idle-timeout-ms", idle_ms,
                 "close a connection that sends nothing for this long (between requests, or "
                 "after connecting)")
      ->check(CLI::Range(1LL, 86400000LL))
      ->capture_default_str();
  app.add_option("--header-timeout-ms", header_ms,
                 "close a connection whose request has not fully arrived this long after its "
                 "first byte (slowloris)")
      ->check(CLI::Range(1LL, 86400000LL))
      ->capture_default_str();
  CLI11_PARSE(app, argc, argv);
  opts.limit_window = std::chrono::milliseconds(window_ms);
  opts.stream_interval = std::chrono::milliseconds(stream_interval_ms);

  try {
    opts.latency = fl::Latency::parse(latency);
    if (!faults.empty()) opts.faults = fl::FaultRates::parse(faults);
  } catch (const std::invalid_argument& e) {
    std::fprintf(stderr, "concur-fake-llm: %s\n", e.what());
    return 2;
  }
  opts.retry_after = std::chrono::milliseconds(retry_after_ms);
  opts.slow_latency = std::chrono::milliseconds(slow_ms);
  opts.idle_timeout = std::chrono::milliseconds(idle_ms);
  opts.header_timeout = std::chrono::milliseconds(header_ms);

  // Block the stop signals before the server starts its threads, so that they
  // inherit the mask and only sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  try {
    fl::Server server(opts);
    std::printf("listening on %s (latency %s, seed %llu)\n", server.base_url().c_str(),
                opts.latency.describe().c_str(), static_cast<unsigned long long>(opts.seed));
    std::fflush(stdout);
    int sig = 0;
    sigwait(&stop, &sig);
    const auto s = server.stats();
    std::printf("stopped by signal %d: %llu requests, max %llu in flight, max %llu connections\n",
                sig, static_cast<unsigned long long>(s.requests),
                static_cast<unsigned long long>(s.max_in_flight),
                static_cast<unsigned long long>(s.max_connections));
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur-fake-llm: cannot serve on %s:%u: %s\n", opts.host.c_str(),
                 static_cast<unsigned>(opts.port), e.what());
    return 1;
  }
  return 0;
}
