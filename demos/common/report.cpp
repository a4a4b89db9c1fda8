// SPDX-License-Identifier: BSL-1.0
#include "report.hpp"

#include <unistd.h>

#include <concur/progress.hpp>

#include <algorithm>
#include <boost/json.hpp>
#include <cstdio>
#include <iostream>

namespace concur::demo {

boost::json::object to_json(const RunRecord& r) {
  boost::json::array results;
  for (std::size_t i = 0; i < r.results.size(); ++i) {
    if (r.result_ok[i]) {
      results.emplace_back(r.results[i]);
    } else {
      results.emplace_back(boost::json::object{{"error", r.results[i]}});
    }
  }
  boost::json::array stalls;
  for (const auto& s : r.stalls) stalls.emplace_back(s);
  return boost::json::object{{"demo", r.demo},     {"executor", r.executor}, {"case", r.case_name},
                             {"wall_s", r.wall_s}, {"cpu_s", r.cpu_s},       {"ok", r.ok},
                             {"failed", r.failed}, {"results", results},     {"stalls", stalls},
                             {"lanes", r.lanes}};
}

void print_json_line(const boost::json::object& o) {
  std::cout << boost::json::serialize(o) << '\n' << std::flush;
}

void print_json_line(const RunRecord& r) { print_json_line(to_json(r)); }

Table::Table(std::vector<std::string> headers) : headers_(std::move(headers)) {}

void Table::add(std::vector<std::string> row) { rows_.push_back(std::move(row)); }

std::string Table::render(int width) const {
  std::vector<std::size_t> widths(headers_.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < widths.size(); ++i)
      widths[i] = std::max(widths[i], row[i].size());
  };
  widen(headers_);
  for (const auto& r : rows_) widen(r);
  std::size_t total = 0;
  for (auto w : widths) total += w + 2;
  std::string out;
  if (width > 0 && total - 2 >= static_cast<std::size_t>(width)) {
    // Too wide for the terminal: one block of "header: value" lines per row.
    std::size_t key = 0;
    for (const auto& h : headers_) key = std::max(key, h.size());
    for (std::size_t r = 0; r < rows_.size(); ++r) {
      if (r > 0) out += '\n';
      for (std::size_t i = 0; i < headers_.size(); ++i) {
        const std::string cell = i < rows_[r].size() ? rows_[r][i] : "";
        out += headers_[i] + ":" + std::string(key - headers_[i].size() + 1, ' ') + cell + '\n';
      }
    }
    return out;
  }
  auto line = [&](const std::vector<std::string>& row) {
    std::string text;
    for (std::size_t i = 0; i < widths.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      text += cell + std::string(widths[i] - cell.size() + 2, ' ');
    }
    while (!text.empty() && text.back() == ' ') text.pop_back();
    out += text + '\n';
  };
  line(headers_);
  out += std::string(total - 2, '-') + '\n';
  for (const auto& r : rows_) line(r);
  return out;
}

void Table::print() const {
  std::fputs(render(ProgressLine::terminal_width(STDOUT_FILENO)).c_str(), stdout);
}

}  // namespace concur::demo
