// SPDX-License-Identifier: BSL-1.0
// concur-batch: an OpenAI Batch-format JSONL file (or one prompt per line) run
// against any OpenAI-compatible endpoint now, at the rate the server allows,
// resumable exactly once.
//
//   concur-batch requests.jsonl -o results.jsonl            embedded concur-fake-llm
//   concur-batch requests.jsonl -o results.jsonl --base-url https://api.openai.com/v1
//   concur-batch prompts.txt -o out.jsonl --system "Translate into Japanese." --model gpt-4o-mini
//
// Killed (even with SIGKILL), the same command continues where it stopped.
// Ctrl-C stops sending, lets what is in flight finish and be written; a
// second Ctrl-C leaves at once (the file stays consistent: a rerun redoes
// what was in flight).
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <boost/json.hpp>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <csignal>
#include <cstdio>
#include <optional>
#include <string>

#include "demo_config.hpp"
#include "interrupt.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "runner.hpp"
#include "trace_flags.hpp"

namespace fl = concur::fake_llm;
namespace batch = concur::batch;

namespace {

std::atomic<batch::Runner*> g_runner{nullptr};
std::atomic<int> g_interrupts{0};

extern "C" void on_interrupt(int) {
  if (g_interrupts.fetch_add(1) == 0) {
    if (batch::Runner* r = g_runner.load()) r->request_stop();
    constexpr char msg[] =
        "\nconcur-batch: stopping: no new requests; finishing those in flight (Ctrl-C again "
        "to leave now)\n";
    (void)!::write(2, msg, sizeof msg - 1);
  } else {
    constexpr char msg[] = "\nconcur-batch: left at once; rerun to finish\n";
    (void)!::write(2, msg, sizeof msg - 1);
    ::_exit(130);  // every line written so far is whole: the rerun resumes
  }
}

std::string fixed(double v, int digits = 1) {
  char s[48];
  std::snprintf(s, sizeof s, "%.*f", digits, v);
  return s;
}

boost::json::object to_json(const batch::Summary& s, const std::string& executor,
                            const std::string& output) {
  return {{"demo", "batch"},
          {"executor", executor},
          {"output", output},
          {"input_lines", s.input_lines},
          {"input_requests", s.input_requests},
          {"invalid", s.invalid},
          {"already_done", s.already_done},
          {"to_run", s.to_run},
          {"ok", s.ok},
          {"failed", s.failed},
          {"unsent", s.unsent},
          {"retried", s.retried},
          {"rate_limited", s.rate_limited},
          {"tokens",
           {{"prompt", s.prompt_tokens},
            {"completion", s.completion_tokens},
            {"total", s.total_tokens}}},
          {"estimated_tokens", s.control.estimated_tokens},
          {"wall_s", s.wall_s},
          {"requests_per_s", s.requests_per_s},
          {"stopped", s.stopped},
          {"torn_line_recovered", s.torn_line},
          {"final_limit", s.control.limit},
          {"peak_limit", s.control.peak_limit},
          {"paced_rpm", s.control.paced_rpm},
          {"paced_tpm", s.control.paced_tpm}};
}

}  // namespace

int main(int argc, char** argv) {
  concur::demo::Interrupt::ignore_until_installed();  // workers: the parent cancels them
  concur::init(argc, argv);
  CLI::App app{
      "concur-batch: run an OpenAI Batch-format JSONL file (or one prompt per line) against an "
      "OpenAI-compatible endpoint now: results appended as they finish, exactly-once resume, "
      "at the server's rate limit"};
  concur::demo::DemoConfig demo_config(app, "event_loop");
  concur::demo::TraceFlags trace_flags(app);
  batch::RunnerOptions ro;
  std::string format = "auto", fsync = "interval", base_url;
  std::string latency = "uniform:50ms..300ms", faults;
  double server_rpm = 0, server_tpm = 0, timeout_s = 600;
  std::uint64_t seed = 42;
  std::size_t max_limit = ro.control.max_limit;
  bool json = false, no_headers = false, cookbook = false;
  app.add_option("input", ro.input, "input file: Batch JSONL lines, or one prompt per line")
      ->required();
  app.add_option("-o,--output", ro.output, "Batch output lines, appended (a rerun resumes into it)")
      ->required();
  app.add_option("--errors", ro.errors, "also write failed requests and malformed lines here");
  app.add_option("--format", format, "auto | batch | prompts")->capture_default_str();
  app.add_option("--model", ro.prompts.model, "model for prompt lines")->capture_default_str();
  app.add_option("--system", ro.prompts.system, "system message for prompt lines");
  app.add_option("--base-url", base_url,
                 "OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 (default: an "
                 "embedded concur-fake-llm; key from $OPENAI_API_KEY)");
  app.add_option("--rpm", ro.control.rpm, "send at most this many requests per minute")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--tpm", ro.control.tpm, "send at most this many (estimated) tokens per minute")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--max-limit", max_limit, "ceiling of the adaptive concurrency limit")
      ->check(CLI::Range(std::size_t{1}, std::size_t{100000}))
      ->capture_default_str();
  app.add_option("--max-retries", ro.max_retries, "per request, on 408/409/429/5xx/resets")
      ->check(CLI::Range(0, 1000))
      ->capture_default_str();
  app.add_flag("--no-rate-headers", no_headers,
               "ignore x-ratelimit-* and let each 429 wait alone (for comparison)");
  app.add_flag("--cookbook", cookbook,
               "the OpenAI cookbook's strategy: every send pauses 15 s after any 429 (use with "
               "--limit; for comparison)");
  app.add_option("--fsync", fsync, "interval (default: once a second) | always | never")
      ->capture_default_str();
  app.add_option("--request-timeout", timeout_s, "seconds per attempt")
      ->check(CLI::Range(0.1, 86400.0))
      ->capture_default_str();
  app.add_option("--latency", latency, "embedded server's latency")->capture_default_str();
  app.add_option("--fault-rate", faults, "embedded server's random faults, e.g. 500=0.01");
  app.add_option("--server-rpm", server_rpm, "embedded server's requests-per-minute limit");
  app.add_option("--server-tpm", server_tpm, "embedded server's tokens-per-minute limit");
  app.add_option("--seed", seed, "embedded server's seed")->capture_default_str();
  app.add_flag("--json", json, "the summary as one JSON object on stdout");
  CLI11_PARSE(app, argc, argv);

  try {
    const auto executors = demo_config.executors();
    if (executors.size() != 1)
      throw concur::ConfigError("concur-batch runs on one executor: give --executor NAME");
    const std::string& executor = executors.front();
    const concur::Config config = demo_config.config_for(executor);
    ro.format = batch::parse_format(format);
    ro.fsync = batch::parse_fsync(fsync);
    ro.control.fixed_limit = config.limit;
    ro.control.max_limit = max_limit;
    ro.control.use_headers = !no_headers && !cookbook;
    if (cookbook) ro.control.pause_after_429 = std::chrono::seconds(15);
    ro.client.timeout = std::chrono::milliseconds(static_cast<long long>(timeout_s * 1000));

    std::optional<fl::Server> server;
    if (base_url.empty()) {
      fl::ServerOptions so;
      so.latency = fl::Latency::parse(latency);
      if (!faults.empty()) so.faults = fl::FaultRates::parse(faults);
      so.seed = seed;
      so.rpm = server_rpm;
      so.tpm = server_tpm;
      server.emplace(so);
      base_url = server->base_url();
    }
    ro.client.base_url = base_url;

    batch::Runner runner(ro);
    const batch::Summary& before = runner.before();
    if (!json) {
      std::fprintf(stderr, "concur-batch: %zu request(s) in %s", before.input_requests,
                   ro.input.c_str());
      if (before.invalid > 0) std::fprintf(stderr, " (+%zu malformed line(s))", before.invalid);
      if (before.already_done > 0)
        std::fprintf(stderr, ", %zu already in %s", before.already_done, ro.output.c_str());
      if (before.torn_line)
        std::fprintf(stderr, " (a torn last line was cut off and will be redone)");
      std::fprintf(stderr, "; %zu to run on %s via %s\n", before.to_run, executor.c_str(),
                   base_url.c_str());
    }

    auto ex = concur::make_executor(config);
    g_runner.store(&runner);
    struct sigaction sa {};
    sa.sa_handler = on_interrupt;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGTERM, &sa, nullptr);

    concur::demo::ProgressMeter meter("batch", before.to_run, !json);
    auto recorder = trace_flags.start(*ex);
    const batch::Summary s = runner.run(
        *ex, [&meter](std::size_t done, std::size_t failed) { meter.update(done, failed); });
    meter.finish();
    trace_flags.finish(
        recorder, executor, "batch", s.wall_s,
        "concur-batch: " + std::to_string(s.ok + s.failed) + " requests on " + executor);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    g_runner.store(nullptr);

    if (json) {
      concur::demo::print_json_line(to_json(s, executor, ro.output));
    } else {
      std::printf("%s: %zu ok, %zu failed", ro.output.c_str(), s.ok, s.failed);
      if (s.invalid > 0) std::printf(", %zu malformed input line(s)", s.invalid);
      if (s.stopped) std::printf(", %zu left for a rerun (stopped)", s.unsent);
      std::printf("\n  retried %zu, 429s seen %zu, tokens %lld (prompt %lld, completion %lld)\n",
                  s.retried, s.rate_limited, static_cast<long long>(s.total_tokens),
                  static_cast<long long>(s.prompt_tokens),
                  static_cast<long long>(s.completion_tokens));
      std::printf("  wall %s s, %s requests/s; concurrency limit %zu (peak %zu)",
                  fixed(s.wall_s, 2).c_str(), fixed(s.requests_per_s).c_str(), s.control.limit,
                  s.control.peak_limit);
      if (s.control.paced_rpm > 0 || s.control.paced_tpm > 0)
        std::printf(", paced at %s RPM / %s TPM", fixed(s.control.paced_rpm, 0).c_str(),
                    fixed(s.control.paced_tpm, 0).c_str());
      std::printf("\n");
      for (const auto& f : trace_flags.written()) std::printf("wrote %s\n", f.c_str());
    }
    if (s.stopped) return 130;
    return s.failed > 0 || s.invalid > 0 ? 1 : 0;
  } catch (const batch::DuplicateId& e) {
    std::fprintf(stderr, "concur-batch: %s\n", e.what());
    return 2;
  } catch (const concur::ConfigError& e) {
    std::fprintf(stderr, "concur-batch: %s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur-batch: %s\n", e.what());
    return 2;
  }
}
