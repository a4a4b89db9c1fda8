// SPDX-License-Identifier: BSL-1.0
#include "runner.hpp"

#include "remote.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cmath>
#include <cstdio>
#include <deque>
#include <random>
#include <ranges>

namespace concur::batch {

namespace json = boost::json;

namespace {

std::optional<llm::Usage> usage_of(const std::string& body) {
  json::error_code ec;
  const json::value v = json::parse(body, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto* u = v.get_object().if_contains("usage");
  if (u == nullptr || !u->is_object()) return std::nullopt;
  const auto num = [&](const char* k) -> long {
    const auto* x = u->get_object().if_contains(k);
    return x != nullptr && x->is_int64() ? static_cast<long>(x->get_int64()) : 0;
  };
  return llm::Usage{num("prompt_tokens"), num("completion_tokens"), num("total_tokens")};
}

// The OpenAI SDKs' rule (and the server's x-should-retry hint).
bool retryable(const llm::RawResponse& r) {
  for (const auto& [name, value] : r.headers) {
    if (name == "x-should-retry") return value == "true";
  }
  return r.status == 408 || r.status == 409 || r.status == 429 || r.status >= 500;
}

// The message of an {"error":{"message"}} body, for the errors on stderr.
std::string error_message(const std::string& body) {
  json::error_code ec;
  const json::value v = json::parse(body, ec);
  if (!ec && v.is_object()) {
    if (const auto* e = v.get_object().if_contains("error"); e != nullptr && e->is_object()) {
      if (const auto* m = e->get_object().if_contains("message"); m != nullptr && m->is_string())
        return std::string(m->get_string());
    }
  }
  return body.substr(0, 200);
}

}  // namespace

Runner::Runner(RunnerOptions options)
    : opts_(std::move(options)),
      client_([&] {
        llm::ClientOptions c = opts_.client;
        c.max_retries = 0;  // the runner retries itself, through the controller
        return c;
      }()),
      control_(opts_.control) {
  on_invalid_line = [](const std::string& m) {
    std::fprintf(stderr, "concur-batch: %s\n", m.c_str());
  };
  Recovered rec = recover_output(opts_.output, !opts_.errors.empty());
  summary_.torn_line = rec.torn;
  InputScan scan = scan_input(opts_.input, opts_.format, opts_.prompts);
  summary_.input_lines = scan.lines;
  summary_.input_requests = scan.requests;
  std::size_t done_here = 0;
  for (const IdKey& k : scan.keys) done_here += is_done(rec.done, k) ? 1 : 0;
  summary_.already_done = done_here;
  summary_.to_run = scan.requests - done_here;
  done_ = std::move(rec.done);
  scan.keys = {};
  reader_ = std::make_unique<InputReader>(opts_.input, scan.format, opts_.prompts);
  output_ = std::make_unique<LineFile>(opts_.output, opts_.fsync);
  if (!opts_.errors.empty()) {
    // Rebuilt from the output each run, so it holds each failure once too.
    errors_ = std::make_unique<LineFile>(opts_.errors, opts_.fsync, /*truncate=*/true);
    for (auto& line : rec.failed_lines) errors_->append(std::move(line));
  }
}

Runner::~Runner() = default;

std::optional<Request> Runner::next_request() {
  std::lock_guard lock(input_mutex_);
  while (!stopping()) {
    std::optional<Parsed> p = reader_->next();
    if (!p) return std::nullopt;
    if (p->kind == Parsed::Kind::invalid) {
      {
        std::lock_guard counts(counts_mutex_);
        ++summary_.invalid;
      }
      if (errors_) errors_->append(invalid_line(reader_->line(), p->error));
      if (on_invalid_line) on_invalid_line("input " + p->error);
      continue;
    }
    if (is_done(done_, key_of(p->request.custom_id))) continue;
    return std::move(p->request);
  }
  return std::nullopt;
}

std::chrono::milliseconds Runner::backoff(int retry) const {
  thread_local std::mt19937_64 rng{std::random_device{}()};
  const double base =
      static_cast<double>(opts_.initial_backoff.count()) * std::pow(2.0, std::min(retry, 20));
  const double capped = std::min(base, static_cast<double>(opts_.max_backoff.count()));
  return std::chrono::milliseconds(static_cast<long long>(
      capped * (1.0 - 0.25 * std::uniform_real_distribution<double>(0, 1)(rng))));
}

void Runner::record(const Outcome& o, const std::optional<llm::Usage>& usage) {
  std::string line = output_line(o);
  if (!o.ok() && errors_) errors_->append(line);
  output_->append(std::move(line));
  std::size_t done = 0, failed = 0;
  {
    std::lock_guard lock(counts_mutex_);
    (o.ok() ? summary_.ok : summary_.failed) += 1;
    if (usage) {
      summary_.prompt_tokens += usage->prompt_tokens;
      summary_.completion_tokens += usage->completion_tokens;
      summary_.total_tokens += usage->total_tokens;
    }
    done = summary_.ok + summary_.failed;
    failed = summary_.failed;
  }
  if (on_progress_) on_progress_(done, failed);
}

// After an attempt: count it, let the controller learn from it, and either
// fill `out` (done: record it) or say how long this request waits before its
// next attempt (a 429 under a shared pause waits in reserve() instead).
std::optional<std::chrono::milliseconds> Runner::judge(RemoteReply& got, int attempt,
                                                       std::int64_t estimate, std::size_t in_flight,
                                                       Outcome& out,
                                                       std::optional<llm::Usage>& usage) {
  const bool can_retry = attempt <= opts_.max_retries;
  if (!got.reply) {
    if (got.transient && can_retry) {
      std::lock_guard lock(counts_mutex_);
      ++summary_.retried;
      return backoff(attempt - 1);
    }
    out.status = 0;
    out.error_code = got.transient ? "connection_error" : "invalid_request";
    out.error_message = got.failure;
    return std::nullopt;
  }
  llm::RawResponse& reply = *got.reply;
  if (reply.ok()) usage = usage_of(reply.body);
  control_.on_reply(reply, estimate, usage, in_flight, reply.elapsed);
  if (reply.status == 429) {
    std::lock_guard lock(counts_mutex_);
    ++summary_.rate_limited;
  }
  if (!reply.ok() && retryable(reply) && can_retry) {
    {
      std::lock_guard lock(counts_mutex_);
      ++summary_.retried;
    }
    const bool shared_pause =
        opts_.control.use_headers || opts_.control.pause_after_429.count() > 0;
    if (reply.status == 429 && shared_pause) return std::chrono::milliseconds(0);
    return reply.rate_limits.retry_after.value_or(backoff(attempt - 1));
  }
  out.status = reply.status;
  out.request_id = reply.request_id;
  out.body = std::move(reply.body);
  if (!reply.ok()) out.error_message = error_message(out.body);
  return std::nullopt;
}

std::int64_t Runner::estimate_of(const Request& req) const {
  return req.prompt_tokens + req.completion_limit.value_or(control_.expected_completion_tokens());
}

Task<void> Runner::perform(Request req) {
  const std::int64_t estimate = estimate_of(req);
  Outcome out;
  out.custom_id = req.custom_id;
  std::optional<llm::Usage> usage;
  for (int attempt = 1;; ++attempt) {
    const auto at = control_.reserve(estimate);
    if (at > Clock::now() && !stopping()) co_await concur::sleep_until(at);
    if (stopping()) {  // not sent (again): left for a rerun, nothing written
      std::lock_guard lock(counts_mutex_);
      ++summary_.unsent;
      co_return;
    }
    llm::RawRequest raw;
    raw.method = req.method;
    raw.path = req.url;
    raw.body = req.body;
    raw.max_retries = 0;
    const std::size_t in_flight = in_flight_.fetch_add(1);
    RemoteReply got;
    try {
      got.reply = co_await client_.send(std::move(raw));
    } catch (const http::ConnectionError& e) {
      got.failure = e.what();
      got.transient = true;
    } catch (const http::Error& e) {
      got.failure = e.what();
    }
    in_flight_.fetch_sub(1);
    const auto wait = judge(got, attempt, estimate, in_flight, out, usage);
    if (!wait) break;
    if (wait->count() > 0) co_await concur::sleep_for(*wait);
  }
  record(out, usage);
}

// processes and cluster: the parent hands out waves of registered calls (remote.hpp),
// each with its paced start time, at most the concurrency limit in flight,
// and judges each reply as it comes back; retries go into the next wave.
Task<void> run_waves(Runner* r) {
  struct Pending {
    Request request;
    int attempt = 1;
    Clock::time_point not_before{};
  };
  std::deque<Pending> retries;
  const auto& o = r->opts_;
  const std::string base_url = r->client_.options().base_url;
  const std::string api_key = r->client_.options().api_key;
  const auto timeout_ms = static_cast<std::int64_t>(o.client.timeout.count());
  for (;;) {
    // A gather's limit cannot move while it runs, and the workers bound what
    // is in flight anyway: once a pace is known (--rpm/--tpm or the server's
    // x-ratelimit-limit-*), each call's start time does the work and waves
    // are long. Until then waves are the adaptive limit's size, so the first
    // sends probe the server (slow start) rather than burst into 429s.
    const ControlStats cs = r->control_.stats();
    const bool paced = cs.paced_rpm > 0 || cs.paced_tpm > 0;
    const std::size_t limit = o.control.fixed_limit > 0 ? o.control.fixed_limit
                              : paced                   ? o.control.max_limit
                                                        : cs.limit;
    const std::size_t size = paced || o.control.fixed_limit > 0 ? 1024 : cs.limit;
    std::vector<Pending> wave;
    while (wave.size() < size && !r->stopping()) {
      if (!retries.empty()) {
        wave.push_back(std::move(retries.front()));
        retries.pop_front();
      } else if (auto next = r->next_request()) {
        wave.push_back({std::move(*next)});
      } else {
        break;
      }
    }
    if (wave.empty()) break;
    using Call =
        decltype(concur::call(batch_send, std::string(), std::string(), std::string(),
                              std::string(), std::string(), std::int64_t(), std::int64_t()));
    std::vector<Call> calls;
    std::vector<std::int64_t> estimates;
    calls.reserve(wave.size());
    for (Pending& p : wave) {
      const std::int64_t estimate = r->estimate_of(p.request);
      estimates.push_back(estimate);
      const auto at = std::max(r->control_.reserve(estimate), p.not_before);
      calls.push_back(concur::call(
          batch_send, base_url, api_key, p.request.method, p.request.url, p.request.body,
          static_cast<std::int64_t>(
              std::chrono::duration_cast<std::chrono::nanoseconds>(at.time_since_epoch()).count()),
          timeout_ms));
    }
    std::size_t in_flight = std::min(limit, wave.size());
    co_await concur::as_completed(
        calls,
        [&](std::size_t i, Result<std::string>&& res) {
          Pending& p = wave[i];
          RemoteReply got;
          if (res.ok()) {
            got = decode_reply(res.value());
          } else {
            got.failure = res.error().describe();  // e.g. the worker died
            got.transient = true;
          }
          Outcome out;
          out.custom_id = p.request.custom_id;
          std::optional<llm::Usage> usage;
          const auto wait =
              r->judge(got, p.attempt, estimates[i], paced ? 0 : in_flight - 1, out, usage);
          if (wait && !r->stopping()) {
            retries.push_back({std::move(p.request), p.attempt + 1, Clock::now() + *wait});
          } else if (!wait) {
            r->record(out, usage);
          } else {
            std::lock_guard lock(r->counts_mutex_);
            ++r->summary_.unsent;
          }
        },
        {.limit = limit});
    if (r->stopping()) break;
  }
}

Task<void> run_one(Runner* r) {
  co_await r->control_.gate().acquire();
  Permit permit(r->control_.gate());
  std::optional<Request> item = r->next_request();
  if (!item) co_return;
  co_await r->perform(std::move(*item));
}

Task<void> run_chunks(Runner* r, std::size_t gather_limit) {
  std::size_t left = r->summary_.to_run;
  while (left > 0 && !r->stopping()) {
    const std::size_t n = std::min(left, r->opts_.chunk);
    auto calls = std::views::iota(std::size_t{0}, n) |
                 std::views::transform([r](std::size_t) { return concur::call(run_one, r); });
    co_await concur::gather_settled(calls, {.limit = gather_limit});
    left -= n;
  }
}

Summary Runner::run(Executor& ex, std::function<void(std::size_t, std::size_t)> on_progress) {
  on_progress_ = std::move(on_progress);
  const std::size_t cap =
      opts_.control.fixed_limit > 0 ? opts_.control.fixed_limit : opts_.control.max_limit;
  const auto t0 = std::chrono::steady_clock::now();
  // Calls that run in worker processes (here or on MPI ranks) go in waves.
  if (ex.name() == "processes" || ex.name() == "cluster") {
    ex.run(run_waves(this));
  } else {
    ex.run(run_chunks(this, cap));
  }
  // Malformed lines after the last request are reported too.
  if (!stopping()) {
    while (next_request()) {
    }
  }
  output_->sync();
  if (errors_) errors_->sync();
  Summary s;
  {
    std::lock_guard lock(counts_mutex_);
    s = summary_;
  }
  s.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  s.requests_per_s = s.wall_s > 0 ? static_cast<double>(s.ok + s.failed) / s.wall_s : 0;
  s.stopped = stopping() && (s.ok + s.failed < s.to_run);
  if (s.stopped) s.unsent = s.to_run - s.ok - s.failed;
  s.control = control_.stats();
  return s;
}

}  // namespace concur::batch
