// SPDX-License-Identifier: BSL-1.0
// What happens to one chat completion of the fake server: the fault (from the
// prompt's markers or the configured rates) and the delay before the reply.
// Both are drawn from the prompt, not from a shared stream, so every
// executor of a demo run meets the same faults and latencies.
#include <cmath>
#include <cstdint>
#include <mutex>
#include <random>
#include <string_view>
#include <utility>

#include "concur/fake_llm.hpp"
#include "server_core.hpp"

namespace concur::fake_llm {

namespace detail {

namespace {
// A rate-based fault is drawn from (seed, prompt, attempt), not from a shared
// stream: the n-th request with a prompt meets the same fault (or none)
// whatever order concurrent requests arrive in, so every executor of a demo
// run (the server reset between them) fails the same inputs, and a retry is
// a fresh draw. Returns a number uniform in [0, 1).
double fault_draw(std::string_view prompt, int attempt, std::uint64_t seed) {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ (seed * 0x9e3779b97f4a7c15ULL);  // FNV-1a
  for (unsigned char c : prompt) h = (h ^ c) * 0x100000001b3ULL;
  h ^= static_cast<std::uint64_t>(attempt) * 0xbf58476d1ce4e5b9ULL;
  // splitmix64's finaliser spreads the last bytes' influence over every bit.
  h = (h ^ (h >> 30)) * 0xbf58476d1ce4e5b9ULL;
  h = (h ^ (h >> 27)) * 0x94d049bb133111ebULL;
  h ^= h >> 31;
  return static_cast<double>(h >> 11) * 0x1.0p-53;
}
}  // namespace

Core::Decision Core::decide(const ChatRequest& req, const Markers& markers) {
  Decision d;
  std::lock_guard lock(mu);
  if (markers.fault != Fault::none) {
    if (markers.count) {
      const int n = ++seen[req.last_user];
      d.fault = n <= *markers.count ? markers.fault : Fault::none;
    } else {
      d.fault = markers.fault;
    }
  } else if (const auto& r = opts.faults; r.total() > 0) {
    double u = fault_draw(req.last_user, ++seen[req.last_user], opts.seed);
    for (auto [rate, fault] :
         {std::pair{r.too_many_requests, Fault::too_many_requests},
          std::pair{r.server_error, Fault::server_error}, std::pair{r.reset, Fault::reset},
          std::pair{r.malformed, Fault::malformed}, std::pair{r.slow, Fault::slow}}) {
      if (u < rate) {
        d.fault = fault;
        break;
      }
      u -= rate;
    }
  }
  if (d.fault == Fault::slow) {
    d.delay = opts.slow_latency;
  } else if (markers.latency) {
    d.delay = *markers.latency;
  } else {
    d.delay = latency_for(req.last_user, opts);
  }
  return d;
}

}  // namespace detail

// Drawn from a generator seeded by (seed, prompt), not from a shared stream:
// the same prompt waits the same time whichever order concurrent requests
// arrive in, so every executor of a demo run faces the same latencies and the
// comparison between them is fair.
std::chrono::milliseconds latency_for(std::string_view prompt, const ServerOptions& options) {
  const Latency& l = options.latency;
  std::uint64_t h = 0xcbf29ce484222325ULL ^ options.seed;  // FNV-1a
  for (unsigned char c : prompt) h = (h ^ c) * 0x100000001b3ULL;
  std::mt19937_64 gen(h);
  double ms = static_cast<double>(l.base.count());
  if (l.kind == Latency::Kind::uniform) {
    ms = std::uniform_real_distribution<double>(ms, static_cast<double>(l.upper.count()))(gen);
  } else if (l.kind == Latency::Kind::log_normal && l.base.count() > 0) {
    ms = std::lognormal_distribution<double>(std::log(ms), l.sigma)(gen);
  }
  return std::chrono::milliseconds(std::llround(ms));
}

}  // namespace concur::fake_llm
