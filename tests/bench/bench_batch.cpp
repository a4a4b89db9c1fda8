// SPDX-License-Identifier: BSL-1.0
// concur-batch-bench: concur-batch against concur-fake-llm (its own process)
// limited like an OpenAI tier, beside the floor the limit sets in the same
// run (issue 15). Run by hand, not by ctest:
//
//   concur-bench-batch [--requests 3000] [--cookbook-requests 600] [--million 1000000]
//
// 1. --requests requests at 6,000 RPM and 300,000 TPM, latency 50-300 ms:
//    concur-batch with no tuning flags (target: wall <= 1.1x the floor, 429s
//    <= 2% of requests), the same on processes (32 workers), --limit 8, --limit 512, --limit 512
//    --no-rate-headers (a fixed semaphore whose requests each wait out their own 429), and the
//    cookbook's strategy (--limit 64 --cookbook: every send pauses 15 s after
//    any 429) on --cookbook-requests requests, fewer because each 429 costs
//    15 s. floor = max(requests / (RPM / 60), tokens / (TPM / 60)).
// 2. --million prompt lines at 0 ms latency, no limits: peak RSS (target
//    <= 100 MB) and requests/s, beside 5,000 lines in the same run.
//
// Every concur-batch run is a child process, so its peak RSS is its own.
#include <fcntl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <concur/fake_llm.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

long arg(int argc, char** argv, const char* name, long fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], name) == 0) return std::atol(argv[i + 1]);
  return fallback;
}

struct Result {
  json::object summary;
  double wall_s = 0;
  long peak_rss_kb = 0;
};

// Runs concur-batch `args`, returns its --json summary and peak RSS.
Result run_batch(const std::vector<std::string>& args) {
  const std::string out = (fs::temp_directory_path() / "concur_bench_batch_stdout").string();
  const auto t0 = std::chrono::steady_clock::now();
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int fd = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(fd, 1);
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 2);
    std::vector<std::string> copy = args;
    std::string bin = CONCUR_BATCH_BIN;
    std::vector<char*> argv{bin.data()};
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  int status = 0;
  rusage ru{};
  ::wait4(pid, &status, 0, &ru);
  Result r;
  r.wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.peak_rss_kb = ru.ru_maxrss;
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), {});
  json::error_code ec;
  json::value v = json::parse(text, ec);
  if (ec || !v.is_object()) {
    std::fprintf(stderr, "concur-batch printed no summary (status %d): %s\n", status, text.c_str());
    std::exit(1);
  }
  r.summary = v.as_object();
  return r;
}

std::string write_batch_input(int n) {
  const std::string path = (fs::temp_directory_path() / "concur_bench_batch_in.jsonl").string();
  std::ofstream f(path, std::ios::trunc);
  for (int i = 0; i < n; ++i) {
    f << R"({"custom_id":"r)" << i
      << R"(","method":"POST","url":"/v1/chat/completions","body":{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Translate into Japanese."},{"role":"user","content":"benchmark sentence number )"
      << i << R"("}]}})" << '\n';
  }
  return path;
}

std::string write_prompts(long n) {
  const std::string path = (fs::temp_directory_path() / "concur_bench_batch_prompts.txt").string();
  std::ofstream f(path, std::ios::trunc);
  for (long i = 0; i < n; ++i) f << "prompt number " << i << '\n';
  return path;
}

double num(const json::object& o, const char* k) {
  const json::value& v = o.at(k);
  return v.is_double() ? v.as_double() : static_cast<double>(v.to_number<std::int64_t>());
}

}  // namespace

int main(int argc, char** argv) {
  const int requests = static_cast<int>(arg(argc, argv, "--requests", 3000));
  const int cookbook_requests = static_cast<int>(arg(argc, argv, "--cookbook-requests", 600));
  const long million = arg(argc, argv, "--million", 1'000'000);
  const double rpm = 6000, tpm = 300000;
  const std::string out = (fs::temp_directory_path() / "concur_bench_batch_out.jsonl").string();

  std::printf(
      "concur-bench-batch: fake server at %.0f RPM, %.0f TPM, latency uniform:50ms..300ms\n\n", rpm,
      tpm);
  {
    concur::fake_llm::ChildServer server(
        CONCUR_FAKE_LLM_BIN,
        {"--rpm", "6000", "--tpm", "300000", "--latency", "uniform:50ms..300ms", "--threads", "2"});
    const std::string in_full = write_batch_input(requests);
    struct Case {
      const char* name;
      std::vector<std::string> flags;
      int n;
    };
    const std::vector<Case> cases = {
        {"adaptive (no flags)", {}, requests},
        {"processes --workers 32 (no flags)",
         {"--executor", "processes", "--workers", "32"},
         requests},
        {"--limit 8", {"--limit", "8"}, requests},
        {"--limit 512", {"--limit", "512"}, requests},
        {"--limit 512 --no-rate-headers", {"--limit", "512", "--no-rate-headers"}, requests},
        {"cookbook: --limit 64, 15 s pause", {"--limit", "64", "--cookbook"}, cookbook_requests},
    };
    std::printf("%-34s %8s %8s %8s %7s %8s %9s\n", "case", "requests", "wall s", "floor s", "ratio",
                "429s", "429s %");
    for (const Case& c : cases) {
      if (c.n <= 0) continue;
      const std::string in = c.n == requests ? in_full : write_batch_input(c.n);
      fs::remove(out);
      std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // the server's buckets refill
      std::vector<std::string> args = {in, "-o", out, "--base-url", server.base_url(), "--json"};
      args.insert(args.end(), c.flags.begin(), c.flags.end());
      const Result r = run_batch(args);
      const double wall = num(r.summary, "wall_s");
      const double tokens = num(r.summary.at("tokens").as_object(), "total");
      const double floor_s = std::max(c.n / (rpm / 60), tokens / (tpm / 60));
      const double limited = num(r.summary, "rate_limited");
      std::printf("%-34s %8d %8.2f %8.2f %6.2fx %8.0f %8.2f%%   (ok %.0f)\n", c.name, c.n, wall,
                  floor_s, wall / floor_s, limited, 100.0 * limited / c.n, num(r.summary, "ok"));
      std::fflush(stdout);
    }
  }
  if (million > 0) {
    concur::fake_llm::ChildServer server(CONCUR_FAKE_LLM_BIN,
                                         {"--latency", "0ms", "--threads", "1"});
    std::printf("\n%-34s %10s %8s %10s %12s\n", "prompt lines, 0 ms latency", "lines", "wall s",
                "req/s", "peak RSS MB");
    for (long n : {5000L, million}) {
      const std::string in = write_prompts(n);
      fs::remove(out);
      const Result r = run_batch({in, "-o", out, "--base-url", server.base_url(), "--json",
                                  "--format", "prompts", "--fsync", "never"});
      std::printf("%-34s %10ld %8.2f %10.0f %12.1f   (ok %.0f)\n",
                  n == 5000 ? "5,000 (the fan-out beside it)" : "the long file", n,
                  num(r.summary, "wall_s"), num(r.summary, "requests_per_s"),
                  static_cast<double>(r.peak_rss_kb) / 1024.0, num(r.summary, "ok"));
      std::fflush(stdout);
      fs::remove(in);
    }
  }
  fs::remove(out);
  return 0;
}
