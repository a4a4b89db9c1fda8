// SPDX-License-Identifier: BSL-1.0
// concur-translate: the seed's job. Texts are translated to Japanese through
// OpenAI-style chat completions under each executor, and the wall time shows
// the seed's lesson: one after another the calls take the sum of their
// latencies; overlapped, about the slowest one.
//
//   concur-translate                          the seed's four sentences, every executor,
//                                             on an embedded concur-fake-llm
//   concur-translate --count 500 --limit 64   more texts, at most 64 in flight
//   concur-translate --base-url https://api.openai.com/v1 --model gpt-4o-mini
//                                             a real endpoint ($OPENAI_API_KEY)
//   concur-translate --stream                 streamed replies: time to first token
//                                             beside the time to the whole reply
#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>
#include <cstdio>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "demo_config.hpp"
#include "interrupt.hpp"
#include "measure.hpp"
#include "progress.hpp"
#include "report.hpp"
#include "shared_client.hpp"
#include "texts.hpp"
#include "trace_flags.hpp"

using concur::Task;
namespace fl = concur::fake_llm;
namespace llm = concur::llm;

namespace {

constexpr const char* kSystemPrompt = "Translate the user's text into Japanese.";

// Client-side in-flight count, for endpoints whose /stats we cannot read.
std::atomic<int> g_in_flight{0};
std::atomic<int> g_max_in_flight{0};

struct InFlight {
  InFlight() {
    const int now = ++g_in_flight;
    int seen = g_max_in_flight.load();
    while (now > seen && !g_max_in_flight.compare_exchange_weak(seen, now)) {
    }
  }
  ~InFlight() { --g_in_flight; }
  InFlight(const InFlight&) = delete;
  InFlight& operator=(const InFlight&) = delete;
};

const llm::Client& client_for(const std::string& base_url, const std::string& model,
                              int max_retries) {
  llm::ClientOptions options;
  options.base_url = base_url;
  options.model = model;
  options.max_retries = max_retries;
  return concur::demo::shared_client(options);
}

// Built before the co_await (a plain function, not in the coroutine): GCC 12
// rejects string-literal temporaries that live across a suspension point.
llm::ChatRequest translation_request(std::string text) {
  llm::ChatRequest request;
  request.messages.push_back({std::string("system"), std::string(kSystemPrompt)});
  request.messages.push_back({std::string("user"), std::move(text)});
  return request;
}

// Arguments are plain values so that the call can cross a process boundary.
Task<std::string> translate(std::string base_url, std::string model, int max_retries,
                            std::string text) {
  const llm::Client& client = client_for(base_url, model, max_retries);
  llm::ChatRequest request = translation_request(std::move(text));
  InFlight counted;
  llm::ChatResponse reply = co_await client.chat(std::move(request));
  co_return std::move(reply.content);
}
CONCUR_REGISTER(translate);

// --stream: per-request times, gathered in this process (a worker process of
// the processes executor keeps its own, so that run shows none).
struct StreamTimes {
  std::mutex mutex;
  std::vector<double> first_token_s, whole_s;
  void clear() {
    std::lock_guard lock(mutex);
    first_token_s.clear();
    whole_s.clear();
  }
};
StreamTimes g_stream_times;

Task<std::string> translate_streamed(std::string base_url, std::string model, int max_retries,
                                     std::string text) {
  const llm::Client& client = client_for(base_url, model, max_retries);
  llm::ChatRequest request = translation_request(std::move(text));
  InFlight counted;
  const auto t0 = std::chrono::steady_clock::now();
  // The deltas are the point of streaming (a UI would show them); here each
  // one only proves the reply is arriving.
  llm::ChatResponse reply =
      co_await client.chat_stream(std::move(request), [](std::string_view) {});
  const double whole = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  {
    std::lock_guard lock(g_stream_times.mutex);
    g_stream_times.first_token_s.push_back(
        std::chrono::duration<double>(reply.time_to_first_token).count());
    g_stream_times.whole_s.push_back(whole);
  }
  co_return std::move(reply.content);
}
CONCUR_REGISTER(translate_streamed);

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

std::string fixed2(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.2f", v);
  return s;
}

struct Run {
  concur::demo::RunRecord rec;
  std::optional<std::uint64_t> max_in_flight;    // unknown: processes on a foreign endpoint
  std::optional<double> first_token_s, whole_s;  // --stream: medians (in-process executors)
};

// Prints the first `show` replies next to their texts.
void print_replies(const std::vector<std::string>& texts, const concur::demo::RunRecord& rec,
                   std::size_t show) {
  for (std::size_t i = 0; i < rec.results.size() && i < show; ++i) {
    std::printf("  %2zu. %s\n      %s %s\n", i + 1, texts[i].c_str(),
                rec.result_ok[i] ? "->" : "!!", rec.results[i].c_str());
  }
  if (rec.results.size() > show)
    std::printf("  ... %zu more (--show N prints more)\n", rec.results.size() - show);
}

}  // namespace

int main(int argc, char** argv) {
  concur::demo::Interrupt::ignore_until_installed();  // workers: the parent cancels them
  concur::init(argc, argv);
  CLI::App app{
      "concur-translate: texts translated to Japanese through chat completions under each "
      "executor; wall time shows sequential (sum of latencies) vs concurrent (the slowest)"};
  concur::demo::DemoConfig demo_config(app);
  concur::demo::TraceFlags trace_flags(app);
  std::string base_url, input;
  std::string model = "gpt-4o-mini";
  std::size_t count = 0;
  std::size_t show = 8;
  int max_retries = 2;
  bool json = false;
  std::string latency = "lognormal:2500ms,0.4";
  std::string faults;
  std::uint64_t seed = 42;
  app.add_option("--base-url", base_url,
                 "OpenAI-compatible endpoint, e.g. https://api.openai.com/v1 "
                 "(default: an embedded concur-fake-llm; key from $OPENAI_API_KEY)");
  app.add_option("--model", model, "model name sent with each request")->capture_default_str();
  auto* count_opt = app.add_option("--count", count, "translate N texts (the seed's four first)")
                        ->check(CLI::Range(std::size_t{1}, std::size_t{1000000}));
  app.add_option("--input", input, "translate the lines of FILE (one text per line)")
      ->excludes(count_opt);
  app.add_option("--max-retries", max_retries, "client retries on 408/409/429/5xx/reset")
      ->check(CLI::Range(0, 20))
      ->capture_default_str();
  app.add_option("--latency", latency,
                 "embedded server's latency: 200ms | uniform:1s..3s | lognormal:MEDIAN,SIGMA")
      ->capture_default_str();
  app.add_option("--fault-rate", faults,
                 "embedded server's random faults, e.g. 429=0.1,500=0.05,reset=0.01; drawn per "
                 "text and attempt, so every executor meets the same faults");
  app.add_option("--seed", seed, "embedded server's seed (latencies and random faults)")
      ->capture_default_str();
  app.add_option("--show", show, "print the first N replies of each run")->capture_default_str();
  bool stream = false;
  app.add_flag("--json", json, "one JSON object per executor on stdout");
  app.add_flag("--stream", stream,
               "stream the replies (stream: true): shows time to first token beside the time "
               "to the whole reply");
  // One timeout flag, in milliseconds like the config key: --timeout-ms
  // (from DemoConfig) sets the executor's default per-task timeout.
  app.footer(
      "Time limit per text, retries included: --timeout-ms MS (the timeout_ms key; 0: none).");
  CLI11_PARSE(app, argc, argv);

  try {
    std::vector<std::string> texts = !input.empty() ? concur::demo::read_lines(input)
                                     : count > 0    ? concur::demo::generate_sentences(count)
                                                    : concur::demo::seed_sentences();
    const std::vector<std::string> executors = demo_config.executors();
    trace_flags.expect_runs(executors.size());

    std::optional<fl::Server> server;
    fl::ServerOptions server_options;
    if (base_url.empty()) {
      server_options.latency = fl::Latency::parse(latency);
      if (!faults.empty()) server_options.faults = fl::FaultRates::parse(faults);
      server_options.seed = seed;
      // Pieces 40 ms apart: a streamed reply visibly trickles in after its first token.
      server_options.stream_interval = std::chrono::milliseconds(40);
      server.emplace(server_options);
      base_url = server->base_url();
    }
    if (!json) {
      std::printf("Translating %zu text(s) into Japanese via %s", texts.size(), base_url.c_str());
      if (server) {
        double sum = 0, slowest = 0;
        for (const auto& t : texts) {
          const double s =
              std::chrono::duration<double>(fl::latency_for(t, server_options)).count();
          sum += s;
          slowest = std::max(slowest, s);
        }
        std::printf(
            "\n(embedded concur-fake-llm, latency %s: the calls' latencies add up to %.2f s, the "
            "slowest is %.2f s)",
            server_options.latency.describe().c_str(), sum, slowest);
      }
      std::printf("\n\n");
    }

    using Call = decltype(concur::call(translate, std::string(), std::string(), 0, std::string()));
    std::vector<Call> calls;
    calls.reserve(texts.size());
    for (const auto& t : texts)
      calls.push_back(
          concur::call(stream ? translate_streamed : translate, base_url, model, max_retries, t));

    // Ctrl-C: the running batch is cancelled (every text still gets its
    // Result), what has finished is printed, and the exit status is 130.
    concur::demo::Interrupt interrupt("concur-translate");
    std::vector<Run> runs;
    for (const auto& name : executors) {
      if (interrupt.requested()) break;
      auto ex = concur::make_executor(demo_config.config_for(name));
      if (server) server->reset_stats();
      g_max_in_flight = 0;
      g_stream_times.clear();
      concur::demo::ProgressMeter meter(name, texts.size(), !json);
      concur::GatherOptions options;
      options.on_progress = meter.callback();
      options.stop = interrupt.token();

      Run run;
      run.rec.demo = "translate";
      run.rec.executor = name;
      run.rec.case_name = "translate";
      run.rec.lanes = ex->lanes();
      auto recorder = trace_flags.start(*ex);
      concur::demo::Stopwatch watch;
      const auto results = ex->gather_settled(calls, options);
      run.rec.wall_s = watch.wall_s();
      run.rec.cpu_s = watch.cpu_s();
      meter.finish();
      trace_flags.finish(recorder, name, "translate", run.rec.wall_s,
                         "concur-translate: " + std::to_string(texts.size()) + " texts on " + name);
      for (const auto& r : results)
        concur::demo::record_result(run.rec, r, [](const std::string& s) { return s; });
      if (server) {
        run.max_in_flight = server->stats().max_in_flight;
      } else if (name != "processes") {
        run.max_in_flight = static_cast<std::uint64_t>(g_max_in_flight.load());
      }

      if (stream) {
        std::lock_guard lock(g_stream_times.mutex);
        if (!g_stream_times.first_token_s.empty()) {
          run.first_token_s = median(g_stream_times.first_token_s);
          run.whole_s = median(g_stream_times.whole_s);
        }
      }

      if (json) {
        auto o = concur::demo::to_json(run.rec);
        if (run.first_token_s) {
          o["first_token_median_s"] = *run.first_token_s;
          o["whole_reply_median_s"] = *run.whole_s;
        }
        concur::demo::print_json_line(o);
      } else {
        std::printf("%s: %zu ok, %zu failed in %.2f s\n", name.c_str(), run.rec.ok, run.rec.failed,
                    run.rec.wall_s);
        if (run.first_token_s) {
          std::printf("  streamed: first token after %.2f s, whole reply after %.2f s (medians)\n",
                      *run.first_token_s, *run.whole_s);
        }
        // Replies are the same on every executor when order is kept: print
        // them once, and say so (or show the first difference) afterwards.
        if (runs.empty()) {
          print_replies(texts, run.rec, show);
        } else if (run.rec.results == runs.front().rec.results) {
          std::printf("  the same replies as %s, in the same order\n",
                      runs.front().rec.executor.c_str());
        } else {
          print_replies(texts, run.rec, show);
        }
        std::printf("\n");
      }
      runs.push_back(std::move(run));
    }

    if (!json) {
      const Run* sequential = nullptr;
      for (const auto& r : runs)
        if (r.rec.executor == "sequential") sequential = &r;
      std::vector<std::string> headers = {"executor", "lanes",         "wall s",   "speed-up",
                                          "cpu s",    "max in flight", "ok/failed"};
      if (stream) {
        headers.push_back("1st token s");
        headers.push_back("reply s");
      }
      concur::demo::Table table(headers);
      for (const auto& r : runs) {
        std::vector<std::string> row = {
            r.rec.executor,
            std::to_string(r.rec.lanes),
            fixed2(r.rec.wall_s),
            sequential ? fixed2(sequential->rec.wall_s / r.rec.wall_s) + "x" : "-",
            fixed2(r.rec.cpu_s),
            r.max_in_flight ? std::to_string(*r.max_in_flight) : "n/a",
            std::to_string(r.rec.ok) + "/" + std::to_string(r.rec.failed)};
        if (stream) {
          row.push_back(r.first_token_s ? fixed2(*r.first_token_s) : "n/a");
          row.push_back(r.whole_s ? fixed2(*r.whole_s) : "n/a");
        }
        table.add(row);
      }
      table.print();
      for (const auto& f : trace_flags.written()) std::printf("wrote %s\n", f.c_str());
      std::printf(
          "\nsequential waits for each reply before sending the next (the sum of the "
          "latencies);\nthe other executors overlap the waits: about the slowest call when every "
          "call is in flight at once\n(processes and thread_pool overlap as many calls as they "
          "have lanes: --workers N).\n");
    }
    if (interrupt.requested()) return concur::demo::Interrupt::kExitCode;
  } catch (const concur::ConfigError& e) {
    std::fprintf(stderr, "concur-translate: %s\n", e.what());
    return 2;
  } catch (const CLI::Error& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "concur-translate: %s\n", e.what());
    return 2;
  }
  return 0;
}
