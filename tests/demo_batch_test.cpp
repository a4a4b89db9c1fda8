// SPDX-License-Identifier: BSL-1.0
// concur-batch end to end (issue 15), the program run as a person runs it on
// its embedded fake server: SIGKILL at several points then resume (every
// custom_id exactly once), a torn last line, Ctrl-C, malformed lines, a
// custom_id twice, unknown urls and 4xx answers, a 429 storm, every
// executor (processes through registered calls). Assertions are structural (counts, ids, statuses);
// the server's --server-rpm keeps each run a few seconds long so that kill
// points fall mid-run.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/json.hpp>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;
namespace json = boost::json;
namespace fs = std::filesystem;

namespace {

class Dir {
 public:
  Dir() {
    path_ = fs::temp_directory_path() /
            ("concur_demo_batch_" + std::to_string(::getpid()) + "_" + std::to_string(++n_));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~Dir() { fs::remove_all(path_); }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
  static inline int n_ = 0;
};

void write_file(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << text;
}
std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}
std::vector<std::string> lines_of(const std::string& path) {
  std::vector<std::string> out;
  std::ifstream in(path, std::ios::binary);
  std::string l;
  while (std::getline(in, l)) out.push_back(l);
  return out;
}
std::size_t newline_count(const std::string& path) {
  const std::string t = read_file(path);
  return static_cast<std::size_t>(std::count(t.begin(), t.end(), '\n'));
}

std::string batch_line(const std::string& id, const std::string& prompt,
                       const std::string& url = "/v1/chat/completions") {
  json::object o{{"custom_id", id},
                 {"method", "POST"},
                 {"url", url},
                 {"body", json::object{{"model", "gpt-4o-mini"},
                                       {"messages", json::array{json::object{
                                                        {"role", "user"}, {"content", prompt}}}}}}};
  return json::serialize(o);
}

std::string make_input(const std::string& path, int n) {
  std::string text;
  for (int i = 0; i < n; ++i)
    text += batch_line("r" + std::to_string(i), "text " + std::to_string(i)) + "\n";
  write_file(path, text);
  return path;
}

struct Child {
  pid_t pid = -1;
};

// Starts concur-batch with `args`, stdout and stderr to files.
Child spawn(const std::vector<std::string>& args, const std::string& out, const std::string& err) {
  Child c;
  c.pid = ::fork();
  if (c.pid == 0) {
    const int o = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    const int e = ::open(err.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ::dup2(o, 1);
    ::dup2(e, 2);
    std::vector<char*> argv;
    std::string bin = CONCUR_BATCH_BIN;
    argv.push_back(bin.data());
    std::vector<std::string> copy = args;
    for (auto& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ::execv(bin.c_str(), argv.data());
    ::_exit(127);
  }
  return c;
}

// Exit code, or 128 + signal; kills it (and fails) after `limit`.
int wait_for(Child c, std::chrono::seconds limit = 60s) {
  const auto until = std::chrono::steady_clock::now() + limit;
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(c.pid, &status, WNOHANG);
    if (r == c.pid) return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    if (std::chrono::steady_clock::now() > until) {
      ::kill(c.pid, SIGKILL);
      ::waitpid(c.pid, &status, 0);
      ADD_FAILURE() << "concur-batch did not finish within " << limit.count() << " s";
      return -1;
    }
    std::this_thread::sleep_for(5ms);
  }
}

// Waits until `path` holds at least `lines` lines; false if the child ended first.
bool wait_for_lines(Child c, const std::string& path, std::size_t lines) {
  const auto until = std::chrono::steady_clock::now() + 60s;
  while (std::chrono::steady_clock::now() < until) {
    if (fs::exists(path) && newline_count(path) >= lines) return true;
    int status = 0;
    if (::waitpid(c.pid, &status, WNOHANG) == c.pid) return false;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

int run(const std::vector<std::string>& args, const Dir& d, std::string* out = nullptr,
        std::string* err = nullptr) {
  const int code = wait_for(spawn(args, d / "stdout", d / "stderr"));
  if (out) *out = read_file(d / "stdout");
  if (err) *err = read_file(d / "stderr");
  return code;
}

// custom_id -> status_code of every output line (the test fails on a repeat).
std::map<std::string, long> outcomes(const std::string& path) {
  std::map<std::string, long> out;
  for (const auto& l : lines_of(path)) {
    const json::value v = json::parse(l);
    const std::string id(v.at("custom_id").as_string());
    const auto& resp = v.at("response");
    const long status = resp.is_null() ? 0 : static_cast<long>(resp.at("status_code").as_int64());
    EXPECT_TRUE(out.emplace(id, status).second) << "custom_id " << id << " twice in " << path;
  }
  return out;
}

void expect_exactly_once(const std::string& path, int n) {
  const auto got = outcomes(path);
  EXPECT_EQ(got.size(), static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) {
    auto it = got.find("r" + std::to_string(i));
    ASSERT_NE(it, got.end()) << "r" << i << " missing";
    EXPECT_EQ(it->second, 200) << "r" << i;
  }
}

json::object summary(const std::string& stdout_text) {
  const auto start = stdout_text.find('{');
  EXPECT_NE(start, std::string::npos) << stdout_text;
  return json::parse(stdout_text.substr(start)).as_object();
}

// Slow enough (50 requests/s) that kill points fall mid-run.
const std::vector<std::string> kPaced = {"--server-rpm", "3000", "--latency", "20ms"};

std::vector<std::string> args_with(std::vector<std::string> a,
                                   const std::vector<std::string>& more) {
  a.insert(a.end(), more.begin(), more.end());
  return a;
}

// On event_loop (the default) and on processes, where each exchange is a
// registered call in a worker process and the parent keeps the file.
class DemoBatchKill : public ::testing::TestWithParam<std::vector<std::string>> {};

TEST_P(DemoBatchKill, SigkillAtSeveralPointsThenResumeIsExactlyOnce) {
  Dir d;
  constexpr int kN = 240;
  const std::string in = make_input(d / "in.jsonl", kN), out = d / "out.jsonl";
  const auto args = args_with(args_with({in, "-o", out}, kPaced), GetParam());
  std::size_t previous = 0;
  for (std::size_t kill_at : {30u, 90u, 160u}) {
    Child c = spawn(args, d / "stdout", d / "stderr");
    ASSERT_TRUE(wait_for_lines(c, out, kill_at)) << read_file(d / "stderr");
    ::kill(c.pid, SIGKILL);
    EXPECT_EQ(wait_for(c), 128 + SIGKILL);
    const std::size_t lines = newline_count(out);
    EXPECT_GT(lines, previous);  // each run added some
    EXPECT_LT(lines, static_cast<std::size_t>(kN)) << "the kill came after the end";
    outcomes(out);  // no custom_id twice so far
    previous = lines;
  }
  // A write torn by a crash: the rerun cuts it off and redoes that request.
  {
    std::ofstream(out, std::ios::app | std::ios::binary)
        << R"({"id":"batch_req_0","custom_id":"r2)";
  }
  std::string stdout_text;
  ASSERT_EQ(run(args_with(args, {"--json"}), d, &stdout_text), 0) << read_file(d / "stderr");
  const json::object s = summary(stdout_text);
  EXPECT_EQ(s.at("already_done").as_int64(), static_cast<std::int64_t>(previous));
  EXPECT_EQ(s.at("ok").as_int64(), kN - static_cast<std::int64_t>(previous));
  EXPECT_TRUE(s.at("torn_line_recovered").as_bool());
  expect_exactly_once(out, kN);
  // Run again: nothing left, nothing sent.
  ASSERT_EQ(run(args_with(args, {"--json"}), d, &stdout_text), 0);
  EXPECT_EQ(summary(stdout_text).at("to_run").as_int64(), 0);
  expect_exactly_once(out, kN);
}

INSTANTIATE_TEST_SUITE_P(Executors, DemoBatchKill,
                         ::testing::Values(std::vector<std::string>{"--executor", "event_loop"},
                                           std::vector<std::string>{"--executor", "processes",
                                                                    "--workers", "4"}),
                         [](const auto& info) { return info.param[1]; });

TEST(DemoBatch, CtrlCStopsSendingAndLeavesAConsistentFile) {
  Dir d;
  constexpr int kN = 200;
  const std::string in = make_input(d / "in.jsonl", kN), out = d / "out.jsonl";
  const auto args = args_with({in, "-o", out, "--json"}, kPaced);
  Child c = spawn(args, d / "stdout", d / "stderr");
  ASSERT_TRUE(wait_for_lines(c, out, 20));
  ::kill(c.pid, SIGINT);
  EXPECT_EQ(wait_for(c, 30s), 130);
  EXPECT_NE(read_file(d / "stderr").find("stopping"), std::string::npos);
  const json::object s = summary(read_file(d / "stdout"));
  EXPECT_TRUE(s.at("stopped").as_bool());
  const std::size_t lines = newline_count(out);
  EXPECT_LT(lines, static_cast<std::size_t>(kN));
  EXPECT_EQ(static_cast<std::size_t>(s.at("ok").as_int64()), lines);  // all in flight were written
  EXPECT_EQ(read_file(out).back(), '\n');
  EXPECT_EQ(outcomes(out).size(), lines);
  ASSERT_EQ(run(args, d), 0) << read_file(d / "stderr");
  expect_exactly_once(out, kN);
}

TEST(DemoBatch, MalformedLinesAreNamedAndTheOthersGoOn) {
  Dir d;
  const std::string in = d / "in.jsonl", out = d / "out.jsonl", errors = d / "errors.jsonl";
  write_file(in, batch_line("a", "one") + "\n{\"custom_id\": \"b\", oops\n" +
                     batch_line("c", "three") + "\n" +
                     R"({"url":"/v1/chat/completions","body":{"messages":[]}})" + "\n" +
                     batch_line("e", "five") + "\n");
  std::string err;
  EXPECT_EQ(run({in, "-o", out, "--errors", errors}, d, nullptr, &err), 1);
  EXPECT_NE(err.find("line 2: not valid JSON"), std::string::npos) << err;
  EXPECT_NE(err.find("line 4: missing \"custom_id\""), std::string::npos) << err;
  const auto got = outcomes(out);
  EXPECT_EQ(got.size(), 3u);
  EXPECT_EQ(got.at("a"), 200);
  EXPECT_EQ(got.at("c"), 200);
  EXPECT_EQ(got.at("e"), 200);
  const auto error_lines = lines_of(errors);
  ASSERT_EQ(error_lines.size(), 2u);
  EXPECT_EQ(json::parse(error_lines[0]).at("line"), 2);
  EXPECT_EQ(json::parse(error_lines[1]).at("line"), 4);
  // A rerun redoes nothing and the errors file still holds each once.
  EXPECT_EQ(run({in, "-o", out, "--errors", errors}, d), 1);
  EXPECT_EQ(outcomes(out).size(), 3u);
  EXPECT_EQ(lines_of(errors).size(), 2u);
}

TEST(DemoBatch, ADuplicateCustomIdIsAnErrorNamingBothLines) {
  Dir d;
  const std::string in = d / "in.jsonl", out = d / "out.jsonl";
  write_file(
      in, batch_line("x", "1") + "\n" + batch_line("y", "2") + "\n" + batch_line("x", "3") + "\n");
  std::string err;
  EXPECT_EQ(run({in, "-o", out}, d, nullptr, &err), 2);
  EXPECT_NE(err.find("duplicate custom_id 'x' on lines 1 and 3"), std::string::npos) << err;
  EXPECT_FALSE(fs::exists(out) && fs::file_size(out) > 0);  // nothing was sent
}

TEST(DemoBatch, UnknownUrlsAnd4xxAnswersAreRecordedAsErrorsNotRetried) {
  Dir d;
  const std::string in = d / "in.jsonl", out = d / "out.jsonl", errors = d / "errors.jsonl";
  const std::string empty_messages =
      R"({"custom_id":"bad","method":"POST","url":"/v1/chat/completions","body":{"model":"m","messages":[]}})";
  write_file(in, batch_line("ok", "fine") + "\n" + batch_line("nowhere", "x", "/v1/unknown") +
                     "\n" + empty_messages + "\n");
  std::string stdout_text;
  EXPECT_EQ(run({in, "-o", out, "--errors", errors, "--json"}, d, &stdout_text), 1);
  const auto got = outcomes(out);
  EXPECT_EQ(got.at("ok"), 200);
  EXPECT_EQ(got.at("nowhere"), 404);
  EXPECT_EQ(got.at("bad"), 400);
  const json::object s = summary(stdout_text);
  EXPECT_EQ(s.at("failed").as_int64(), 2);
  EXPECT_EQ(s.at("retried").as_int64(), 0);
  std::set<std::string> failed_ids;
  for (const auto& l : lines_of(errors))
    failed_ids.insert(std::string(json::parse(l).at("custom_id").as_string()));
  EXPECT_EQ(failed_ids, (std::set<std::string>{"nowhere", "bad"}));
}

// A server at 50 requests/s: with its x-ratelimit-* headers the pace is set
// from the first replies (few 429s); without them (--no-rate-headers) the
// adaptive limit alone converges: every request still ends 200, and the
// 429s stay a fraction of the requests instead of a storm.
TEST(DemoBatch, A429StormConverges) {
  Dir d;
  constexpr int kN = 200;
  const std::string in = make_input(d / "in.jsonl", kN);
  for (bool headers : {true, false}) {
    const std::string out = d / (headers ? "with.jsonl" : "without.jsonl");
    std::vector<std::string> args = {in,     "-o",        out,    "--json", "--server-rpm",
                                     "3000", "--latency", "100ms"};
    if (!headers) args.push_back("--no-rate-headers");
    std::string stdout_text;
    ASSERT_EQ(run(args, d, &stdout_text), 0) << read_file(d / "stderr");
    const json::object s = summary(stdout_text);
    EXPECT_EQ(s.at("ok").as_int64(), kN);
    const auto limited = s.at("rate_limited").as_int64();
    if (headers) {
      EXPECT_LE(limited, kN / 20) << "headers: " << stdout_text;
    } else {
      EXPECT_LE(limited, kN / 2) << "no headers: " << stdout_text;
    }
    expect_exactly_once(out, kN);
  }
}

TEST(DemoBatch, PromptLinesRunOnEveryExecutor) {
  Dir d;
  const std::string in = d / "prompts.txt";
  write_file(in, "first\nsecond\n\nthird\n");
  for (const char* ex : {"sequential", "event_loop", "thread_pool", "fibers", "processes"}) {
    const std::string out = d / (std::string(ex) + ".jsonl");
    ASSERT_EQ(
        run({in, "-o", out, "--executor", ex, "--system", "Translate.", "--latency", "5ms"}, d), 0)
        << ex << ": " << read_file(d / "stderr");
    const auto lines = lines_of(out);
    ASSERT_EQ(lines.size(), 3u) << ex;
    std::set<std::string> ids;
    for (const auto& l : lines) {
      const json::value v = json::parse(l);
      ids.insert(std::string(v.at("custom_id").as_string()));
      EXPECT_EQ(v.at("response").at("status_code"), 200);
    }
    EXPECT_EQ(ids, (std::set<std::string>{"line-1", "line-2", "line-4"})) << ex;
  }
}

}  // namespace
