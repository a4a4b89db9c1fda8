// SPDX-License-Identifier: BSL-1.0
// concur-bench-llm: 5,000 chat completions at 200 ms latency per executor,
// beside a floor measured in the same run: a plain libcurl multi-socket loop
// (curl_multi_socket_action on epoll) driving the same requests from one
// thread. Targets (issue 6): event_loop wall <= 1.2x the floor, fibers <= 1.3x.
//
//   concur-bench-llm [--requests 5000] [--latency-ms 200] [--server PATH]
//
// The server is concur-fake-llm in its own process (its descriptors do not
// count against ours). Each measurement runs in a fresh child process of this
// program (`--one NAME`), so its peak RSS and CPU time are its own.
// thread_pool runs at 64 and 512 workers; processes with 2 workers runs the
// full count with every call in flight (worker_concurrency = half of them),
// and samples at the default worker_concurrency and at one call per worker;
// sequential runs a sample too, and the table projects samples to the full
// count. Target (issue 13): processes with 2 workers <= 1.5x the floor.
//
// libcurl's cost per transfer grows with the number of transfers in its
// multi handle (5,000 handles added at once cost more than the same requests
// fed through a window), so the floor runs with all 5,000 added at once and
// with a few window sizes (a finished transfer's slot goes to the next
// request), and the fastest of them is the floor.
#include <curl/curl.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <concur/concur.hpp>
#include <concur/fake_llm.hpp>
#include <concur/llm.hpp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

std::string prompt_for(int i) { return "benchmark request " + std::to_string(i); }

std::string chat_body(int i) {
  return R"({"model":"bench","messages":[{"role":"system","content":"Translate the user's text into Japanese."},{"role":"user","content":")" +
         prompt_for(i) + R"("}]})";
}

double cpu_seconds(int who) {
  rusage u{};
  getrusage(who, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

long peak_rss_kb(int who) {
  rusage u{};
  getrusage(who, &u);
  return u.ru_maxrss;
}

// --- the floor: one thread, libcurl multi-socket on epoll -----------------

class CurlFloor {
 public:
  explicit CurlFloor(std::string url) : url_(std::move(url)) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &CurlFloor::on_socket);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &CurlFloor::on_timer);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
  }
  ~CurlFloor() {
    curl_multi_cleanup(multi_);
    close(epoll_);
  }

  /// Runs `n` POSTs, at most `window` in the multi handle at once (0: all);
  /// returns how many got a 200.
  int run(int n, int window) {
    if (window <= 0 || window > n) window = n;
    struct Transfer {
      CURL* easy = nullptr;
      std::string body;
      std::string reply;
    };
    std::vector<Transfer> transfers(static_cast<std::size_t>(n));
    curl_slist* headers = curl_slist_append(nullptr, "Content-Type: application/json");
    for (int i = 0; i < n; ++i) {
      Transfer& t = transfers[static_cast<std::size_t>(i)];
      t.body = chat_body(i);
      t.easy = curl_easy_init();
      curl_easy_setopt(t.easy, CURLOPT_URL, url_.c_str());
      curl_easy_setopt(t.easy, CURLOPT_HTTPHEADER, headers);
      curl_easy_setopt(t.easy, CURLOPT_POSTFIELDS, t.body.c_str());
      curl_easy_setopt(t.easy, CURLOPT_POSTFIELDSIZE, static_cast<long>(t.body.size()));
      curl_easy_setopt(t.easy, CURLOPT_WRITEFUNCTION, &CurlFloor::on_data);
      curl_easy_setopt(t.easy, CURLOPT_WRITEDATA, &t.reply);
      curl_easy_setopt(t.easy, CURLOPT_NOSIGNAL, 1L);
    }
    int added = 0;
    for (; added < window; ++added)
      curl_multi_add_handle(multi_, transfers[static_cast<std::size_t>(added)].easy);
    int running = 0;
    int ok = 0;
    int finished = 0;
    curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
    std::vector<epoll_event> events(1024);
    while (finished < n) {
      int wait_ms = 1000;
      if (timer_) {
        const auto left =
            std::chrono::duration_cast<std::chrono::milliseconds>(*timer_ - Clock::now()).count();
        wait_ms = static_cast<int>(std::clamp<long long>(left, 0, 1000));
      }
      const int got = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), wait_ms);
      for (int i = 0; i < got; ++i) {
        int flags = 0;
        if (events[i].events & (EPOLLIN | EPOLLHUP)) flags |= CURL_CSELECT_IN;
        if (events[i].events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
        if (events[i].events & EPOLLERR) flags |= CURL_CSELECT_ERR;
        curl_multi_socket_action(multi_, events[i].data.fd, flags, &running);
      }
      if (timer_ && Clock::now() >= *timer_) {
        timer_.reset();
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      }
      int queued = 0;
      while (CURLMsg* m = curl_multi_info_read(multi_, &queued)) {
        if (m->msg != CURLMSG_DONE) continue;
        long status = 0;
        CURL* done = m->easy_handle;
        curl_easy_getinfo(done, CURLINFO_RESPONSE_CODE, &status);
        if (m->data.result == CURLE_OK && status == 200) ++ok;
        ++finished;
        curl_multi_remove_handle(multi_, done);  // its connection stays for reuse
        if (added < n)
          curl_multi_add_handle(multi_, transfers[static_cast<std::size_t>(added++)].easy);
      }
    }
    for (auto& t : transfers) curl_easy_cleanup(t.easy);
    curl_slist_free_all(headers);
    return ok;
  }

 private:
  static int on_socket(CURL*, curl_socket_t s, int what, void* self_p, void* assigned) {
    auto* self = static_cast<CurlFloor*>(self_p);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(self->epoll_, EPOLL_CTL_DEL, s, nullptr);
      return 0;
    }
    epoll_event ev{};
    ev.events = ((what & CURL_POLL_IN) ? EPOLLIN : 0u) | ((what & CURL_POLL_OUT) ? EPOLLOUT : 0u);
    ev.data.fd = s;
    if (assigned == nullptr) {
      curl_multi_assign(self->multi_, s, self);
      if (epoll_ctl(self->epoll_, EPOLL_CTL_ADD, s, &ev) == 0) return 0;
    }
    epoll_ctl(self->epoll_, EPOLL_CTL_MOD, s, &ev);
    return 0;
  }
  static int on_timer(CURLM*, long ms, void* self_p) {
    auto* self = static_cast<CurlFloor*>(self_p);
    if (ms < 0) {
      self->timer_.reset();
    } else {
      self->timer_ = Clock::now() + std::chrono::milliseconds(ms);
    }
    return 0;
  }
  static std::size_t on_data(char* p, std::size_t size, std::size_t n, void* out) {
    static_cast<std::string*>(out)->append(p, size * n);
    return size * n;
  }

  std::string url_;
  int epoll_ = -1;
  CURLM* multi_ = nullptr;
  std::optional<Clock::time_point> timer_;
};

// --- the same work through concur -----------------------------------------

const concur::llm::Client& shared_client(const std::string& base_url) {
  static std::once_flag once;
  static std::unique_ptr<concur::llm::Client> client;
  std::call_once(once, [&] {
    concur::llm::ClientOptions o;
    o.base_url = base_url;
    o.model = "bench";
    o.max_retries = 0;  // a failure should show, not be retried away
    client = std::make_unique<concur::llm::Client>(std::move(o));
  });
  return *client;
}

concur::Task<std::size_t> completion(std::string base_url, int i) {
  concur::llm::ChatRequest request;
  request.messages.push_back(
      {std::string("system"), std::string("Translate the user's text into Japanese.")});
  request.messages.push_back({std::string("user"), prompt_for(i)});
  auto reply = co_await shared_client(base_url).chat(std::move(request));
  co_return reply.content.size();
}
CONCUR_REGISTER(completion);

struct Outcome {
  double wall_s = 0;
  double cpu_s = 0;
  int ok = 0;
  int failed = 0;
  long rss_kb = 0;
  long children_rss_kb = 0;
  std::string first_error;
};

Outcome run_one(const std::string& name, int workers, int concurrency, int n,
                const std::string& base_url) {
  Outcome out;
  const double cpu0 = cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN);
  const auto t0 = Clock::now();
  if (name == "floor") {
    CurlFloor floor(base_url + "/chat/completions");
    out.ok = floor.run(n, workers);  // workers: the window
    out.failed = n - out.ok;
  } else {
    concur::Config config;
    config.executor = name;
    config.workers = workers;
    if (concurrency > 0) config.worker_concurrency = static_cast<std::size_t>(concurrency);
    auto ex = concur::make_executor(config);
    using Call = decltype(concur::call(completion, std::string(), 0));
    std::vector<Call> calls;
    calls.reserve(static_cast<std::size_t>(n));
    for (int i = 0; i < n; ++i) calls.push_back(concur::call(completion, base_url, i));
    const auto results = ex->gather_settled(calls);
    for (const auto& r : results) {
      if (r.ok()) {
        ++out.ok;
      } else {
        ++out.failed;
        if (out.first_error.empty()) out.first_error = r.error().describe();
      }
    }
  }
  out.wall_s = std::chrono::duration<double>(Clock::now() - t0).count();
  out.cpu_s = cpu_seconds(RUSAGE_SELF) + cpu_seconds(RUSAGE_CHILDREN) - cpu0;
  out.rss_kb = peak_rss_kb(RUSAGE_SELF);
  out.children_rss_kb = peak_rss_kb(RUSAGE_CHILDREN);
  return out;
}

// --- the parent: one child process per measurement -------------------------

struct Case {
  std::string label;
  std::string executor;
  int workers;
  int requests;
  int concurrency = 0;  // processes: calls per worker at once (0: the default)
};

std::string self_path() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf, static_cast<std::size_t>(n));
}

// cluster runs under mpirun, one rank per worker (as root Open MPI wants
// to be told that this is meant).
std::string launcher_for(const Case& c) {
  if (c.executor != "cluster") return "";
  return std::string(getuid() == 0 ? "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 "
                                   : "") +
         "mpirun -np " + std::to_string(c.workers) + " --oversubscribe ";
}

bool have_mpirun() { return std::system("command -v mpirun >/dev/null 2>&1") == 0; }

std::optional<Outcome> measure_in_child(const Case& c, const std::string& base_url) {
  const std::string cmd = launcher_for(c) + self_path() + " --one " + c.executor + " --workers " +
                          std::to_string(c.workers) + " --concurrency " +
                          std::to_string(c.concurrency) + " --requests " +
                          std::to_string(c.requests) + " --url " + base_url;
  std::unique_ptr<FILE, int (*)(FILE*)> pipe(popen(cmd.c_str(), "r"), &pclose);
  if (!pipe) return std::nullopt;
  char line[2048];
  while (std::fgets(line, sizeof line, pipe.get()) != nullptr) {
    Outcome o;
    char err[1024] = "";
    if (std::sscanf(line, "RESULT %lf %lf %d %d %ld %ld %1023[^\n]", &o.wall_s, &o.cpu_s, &o.ok,
                    &o.failed, &o.rss_kb, &o.children_rss_kb, err) >= 6) {
      o.first_error = err;
      return o;
    }
    std::fputs(line, stderr);
  }
  return std::nullopt;
}

// Server-side "max in flight": POST /stats/reset before, GET /stats after.
std::string server_call(const std::string& url, bool post) {
  CURL* easy = curl_easy_init();
  std::string body;
  curl_easy_setopt(easy, CURLOPT_URL, url.c_str());
  if (post) curl_easy_setopt(easy, CURLOPT_POSTFIELDS, "");
  curl_easy_setopt(
      easy, CURLOPT_WRITEFUNCTION, +[](char* p, std::size_t s, std::size_t n, void* out) {
        static_cast<std::string*>(out)->append(p, s * n);
        return s * n;
      });
  curl_easy_setopt(easy, CURLOPT_WRITEDATA, &body);
  curl_easy_perform(easy);
  curl_easy_cleanup(easy);
  return body;
}

long json_number(const std::string& body, const std::string& key) {
  const auto at = body.find("\"" + key + "\":");
  return at == std::string::npos ? -1 : std::atol(body.c_str() + at + key.size() + 3);
}

int arg_int(int argc, char** argv, const char* flag, int fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], flag) == 0) return std::atoi(argv[i + 1]);
  return fallback;
}
std::string arg_text(int argc, char** argv, const char* flag, std::string fallback) {
  for (int i = 1; i + 1 < argc; ++i)
    if (std::strcmp(argv[i], flag) == 0) return argv[i + 1];
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  concur::init(argc, argv);
  curl_global_init(CURL_GLOBAL_DEFAULT);
  const int requests = arg_int(argc, argv, "--requests", 5000);

  if (const std::string one = arg_text(argc, argv, "--one", ""); !one.empty()) {
    const Outcome o =
        run_one(one, arg_int(argc, argv, "--workers", 0), arg_int(argc, argv, "--concurrency", 0),
                requests, arg_text(argc, argv, "--url", ""));
    std::printf("RESULT %.4f %.4f %d %d %ld %ld %s\n", o.wall_s, o.cpu_s, o.ok, o.failed, o.rss_kb,
                o.children_rss_kb, o.first_error.c_str());
    return 0;
  }

  const int latency_ms = arg_int(argc, argv, "--latency-ms", 200);
  const std::string server_bin = arg_text(argc, argv, "--server", CONCUR_FAKE_LLM_BIN);
  concur::fake_llm::ChildServer server(
      server_bin, {"--latency", std::to_string(latency_ms) + "ms", "--threads", "2"});
  const std::string base_url = server.base_url();
  const std::string stats_url = "http://127.0.0.1:" + std::to_string(server.port()) + "/stats";
  std::printf("concur-bench-llm: %d chat completions at %d ms latency, server %s (pid %d)\n\n",
              requests, latency_ms, base_url.c_str(), server.pid());

  bool have_processes = false;
  for (auto n : concur::executor_names()) have_processes |= n == "processes";
  const int sample_sequential = std::min(requests, 20);
  const int sample_processes = std::min(requests, 320);
  std::vector<Case> cases{
      {"floor: curl, all at once", "floor", 0, requests},
      {"floor: curl, window 2000", "floor", 2000, requests},
      {"floor: curl, window 1000", "floor", 1000, requests},
      {"floor: curl, window 500", "floor", 500, requests},
      {"event_loop", "event_loop", 0, requests},
      {"fibers", "fibers", 0, requests},
      {"thread_pool x64", "thread_pool", 64, requests},
      {"thread_pool x512", "thread_pool", 512, requests},
  };
  // processes: 2 workers, each overlapping the waits of many calls on its
  // own event loop (one per core, all the requests in flight), and at the
  // default worker_concurrency; one call per worker as before, sampled.
  const int per_worker = (requests + 1) / 2;
  const int default_concurrency = static_cast<int>(concur::Config{}.worker_concurrency);
  if (have_processes) {
    cases.push_back(
        {"processes 2 x " + std::to_string(per_worker), "processes", 2, requests, per_worker});
    const int at_default = std::min(requests, 64 * default_concurrency);
    cases.push_back({"processes 2 x " + std::to_string(default_concurrency) + " (default)" +
                         (at_default < requests ? " (sample)" : ""),
                     "processes", 2, at_default, default_concurrency});
    cases.push_back({"processes 16 x 1 (sample)", "processes", 16, sample_processes, 1});
  }
  // cluster: 3 ranks under mpirun, each rank's worker overlapping its share.
  const int per_rank = (requests + 2) / 3;
  if (have_mpirun()) {
    cases.push_back({"cluster 3 x " + std::to_string(per_rank), "cluster", 3, requests, per_rank});
  }
  cases.push_back({"sequential (sample)", "sequential", 0, sample_sequential});

  std::printf("%-26s %8s %9s %9s %8s %10s %9s %11s %12s\n", "run", "requests", "wall s", "x floor",
              "cpu s", "ok/failed", "in flight", "peak RSS MB", "workers' MB");
  double floor_wall = 0;
  double event_loop_ratio = 0, fibers_ratio = 0, processes_ratio = 0, cluster_ratio = 0;
  for (const auto& c : cases) {
    server_call(stats_url + "/reset", true);
    const auto o = measure_in_child(c, base_url);
    if (!o) {
      std::printf("%-26s failed to run\n", c.label.c_str());
      continue;
    }
    const long in_flight = json_number(server_call(stats_url, false), "max_in_flight");
    // A sample is projected to the full count (calls are independent and alike).
    const double projected = o->wall_s * requests / c.requests;
    // The fastest floor variant so far is the floor (they run first).
    if (c.executor == "floor" && (floor_wall == 0 || o->wall_s < floor_wall))
      floor_wall = o->wall_s;
    const double ratio = floor_wall > 0 ? projected / floor_wall : 0;
    if (c.executor == "event_loop") event_loop_ratio = ratio;
    if (c.executor == "fibers") fibers_ratio = ratio;
    if (c.executor == "processes" && c.concurrency == default_concurrency) processes_ratio = ratio;
    if (c.executor == "cluster") cluster_ratio = ratio;
    char wall[32];
    if (c.requests == requests) {
      std::snprintf(wall, sizeof wall, "%.2f", o->wall_s);
    } else {
      std::snprintf(wall, sizeof wall, "%.1f*", projected);
    }
    std::printf(
        "%-26s %8d %9s %8.2fx %8.2f %5d/%-4d %9ld %11.1f %12s\n", c.label.c_str(), c.requests, wall,
        ratio, o->cpu_s, o->ok, o->failed, in_flight, static_cast<double>(o->rss_kb) / 1024.0,
        c.executor == "processes" ? std::to_string(o->children_rss_kb / 1024).c_str() : "-");
    if (!o->first_error.empty()) std::printf("    first error: %s\n", o->first_error.c_str());
  }
  std::printf(
      "\n* projected to %d requests from the sample (wall x %d / sample size)\n"
      "floor: %.2f s, the fastest curl row (each row's 'x floor' is against the fastest so far)\n"
      "targets: event_loop <= 1.20x floor: %.2fx %s; fibers <= 1.30x floor: %.2fx %s; "
      "processes (2 workers, default worker_concurrency) <= 1.50x floor: %.2fx %s\n",
      requests, requests, floor_wall, event_loop_ratio, event_loop_ratio <= 1.2 ? "MET" : "MISSED",
      fibers_ratio, fibers_ratio <= 1.3 ? "MET" : "MISSED", processes_ratio,
      processes_ratio > 0 && processes_ratio <= 1.5 ? "MET" : "MISSED");
  if (cluster_ratio > 0) {
    std::printf("cluster (3 ranks under mpirun) <= 1.50x floor: %.2fx %s (cpu s: rank 0 only)\n",
                cluster_ratio, cluster_ratio <= 1.5 ? "MET" : "MISSED");
  }
  curl_global_cleanup();
  return 0;
}
