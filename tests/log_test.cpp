// SPDX-License-Identifier: BSL-1.0
// concur::set_log_handler: concur's own messages (here a stall report, the
// one every in-process executor can make) reach the program's handler with a
// level, the default writes one line to stderr, and deliveries are
// serialised across threads.
#include <gtest/gtest.h>

#include <chrono>
#include <concur/concur.hpp>
#include <concur/log.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using namespace std::chrono_literals;

namespace {

struct Captured {
  concur::LogLevel level;
  std::string line;
};

// Every test leaves the default handler behind it.
class Log : public ::testing::Test {
 protected:
  void TearDown() override { concur::set_log_handler(nullptr); }
};

concur::Task<int> blocks_the_thread() {
  std::this_thread::sleep_for(60ms);  // the classic mistake: holds the loop's thread
  co_return 1;
}

TEST_F(Log, StallReportsReachTheHandlerAsWarnings) {
  std::vector<Captured> seen;
  concur::set_log_handler([&](concur::LogLevel level, std::string_view line) {
    seen.push_back({level, std::string(line)});
  });
  concur::Config c;
  c.executor = "event_loop";
  c.stall_threshold = 10ms;
  auto ex = concur::make_executor(c);
  ::testing::internal::CaptureStderr();
  ex->gather(concur::call(blocks_the_thread));
  const std::string err = ::testing::internal::GetCapturedStderr();
  // Reports while the stall lasts ("has been blocking"), then one when it ends.
  ASSERT_GE(seen.size(), 1u);
  for (const auto& s : seen) {
    EXPECT_EQ(s.level, concur::LogLevel::warning);
    EXPECT_EQ(s.line.find('\n'), std::string::npos) << "one line, no newline";
  }
  EXPECT_NE(seen.back().line.find("blocked the event_loop thread"), std::string::npos)
      << seen.back().line;
  EXPECT_EQ(err, "") << "a handler replaces stderr";
}

TEST_F(Log, DefaultWritesOneLineToStderr) {
  ::testing::internal::CaptureStderr();
  concur::log(concur::LogLevel::error, "concur: something to see");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "concur: something to see\n");

  concur::set_log_handler([](concur::LogLevel, std::string_view) {});
  concur::set_log_handler(nullptr);  // back to the default
  ::testing::internal::CaptureStderr();
  concur::log(concur::LogLevel::warning, "again");
  EXPECT_EQ(::testing::internal::GetCapturedStderr(), "again\n");
}

TEST_F(Log, DeliveriesAreSerialised) {
  // A plain int: concurrent deliveries would lose increments (and TSan
  // would see the race).
  long count = 0;
  bool overlapped = false;
  int inside = 0;
  concur::set_log_handler([&](concur::LogLevel, std::string_view) {
    if (++inside != 1) overlapped = true;
    ++count;
    --inside;
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([] {
      for (int i = 0; i < 2000; ++i) concur::log(concur::LogLevel::debug, "tick");
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(count, 8000);
  EXPECT_FALSE(overlapped);
}

TEST_F(Log, AThrowingHandlerDoesNotEscape) {
  concur::set_log_handler(
      [](concur::LogLevel, std::string_view) { throw std::runtime_error("logger down"); });
  EXPECT_NO_THROW(concur::log(concur::LogLevel::error, "x"));
}

TEST_F(Log, LevelsHaveNames) {
  EXPECT_EQ(concur::to_string(concur::LogLevel::debug), "debug");
  EXPECT_EQ(concur::to_string(concur::LogLevel::info), "info");
  EXPECT_EQ(concur::to_string(concur::LogLevel::warning), "warning");
  EXPECT_EQ(concur::to_string(concur::LogLevel::error), "error");
}

}  // namespace
