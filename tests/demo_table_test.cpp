// SPDX-License-Identifier: BSL-1.0
// The demos' result table fits the terminal (issue 20): on a narrow one each
// row becomes "header: value" lines instead of wrapping.
#include <gtest/gtest.h>

#include <sstream>
#include <string>

#include "report.hpp"

namespace {

concur::demo::Table sample() {
  concur::demo::Table t({"executor", "lanes", "wall s", "speed-up"});
  t.add({"sequential", "1", "11.39", "1.00x"});
  t.add({"event_loop", "1", "3.62", "3.15x"});
  return t;
}

std::size_t widest_line(const std::string& text) {
  std::istringstream in(text);
  std::size_t most = 0;
  for (std::string line; std::getline(in, line);) most = std::max(most, line.size());
  return most;
}

TEST(DemoTable, AlignedColumnsWhenItFits) {
  const std::string text = sample().render(80);
  EXPECT_EQ(text.rfind("executor    lanes  wall s  speed-up\n", 0), 0u) << text;
  EXPECT_NE(text.find("event_loop  1      3.62    3.15x"), std::string::npos) << text;
  EXPECT_EQ(sample().render(0), text) << "no terminal: no limit";
}

TEST(DemoTable, OneBlockPerRowOnANarrowTerminal) {
  const std::string text = sample().render(30);
  EXPECT_LE(widest_line(text), 30u) << text;
  EXPECT_NE(text.find("executor: sequential\n"), std::string::npos) << text;
  EXPECT_NE(text.find("speed-up: 3.15x\n"), std::string::npos) << text;
}

}  // namespace
