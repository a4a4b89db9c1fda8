#include "report.hpp"

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

void Table::print() const {
  std::vector<std::size_t> width(headers_.size(), 0);
  auto widen = [&](const std::vector<std::string>& row) {
    for (std::size_t i = 0; i < row.size() && i < width.size(); ++i)
      width[i] = std::max(width[i], row[i].size());
  };
  widen(headers_);
  for (const auto& r : rows_) widen(r);
  auto line = [&](const std::vector<std::string>& row) {
    std::string out;
    for (std::size_t i = 0; i < width.size(); ++i) {
      std::string cell = i < row.size() ? row[i] : "";
      out += cell + std::string(width[i] - cell.size() + 2, ' ');
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    std::printf("%s\n", out.c_str());
  };
  line(headers_);
  std::size_t total = 0;
  for (auto w : width) total += w + 2;
  std::printf("%s\n", std::string(total - 2, '-').c_str());
  for (const auto& r : rows_) line(r);
}

}  // namespace concur::demo
