// SPDX-License-Identifier: BSL-1.0
// Output shared by the demos: one JSON object per line for machines, and an
// aligned text table for people.
#pragma once

#include <boost/json/object.hpp>
#include <concur/concur.hpp>
#include <string>
#include <vector>

namespace concur::demo {

/// One (executor, case) run, as every demo reports it.
struct RunRecord {
  std::string demo;
  std::string executor;
  std::string case_name;
  double wall_s = 0;
  double cpu_s = 0;
  std::size_t ok = 0;
  std::size_t failed = 0;
  std::vector<std::string> results;  // input order; failures as "<type>: <message>"
  std::vector<bool> result_ok;       // parallel to results
  std::vector<std::string> stalls;   // stall reports, as text
  int lanes = 1;
};

/// `r` as the JSON object every demo prints (keys: demo, executor, case,
/// wall_s, cpu_s, ok, failed, results, stalls, lanes); a demo may add keys.
boost::json::object to_json(const RunRecord& r);

/// Prints a JSON object as one line on stdout.
void print_json_line(const boost::json::object& o);
/// Prints `to_json(r)` as one line on stdout.
void print_json_line(const RunRecord& r);

/// A fixed-width text table that fits the terminal: wider than `width`
/// columns, each row is printed as "header: value" lines instead, so
/// nothing wraps on a narrow terminal.
class Table {
 public:
  explicit Table(std::vector<std::string> headers);
  void add(std::vector<std::string> row);
  /// Prints render() for stdout's terminal width (no limit into a pipe).
  void print() const;
  /// The table's text for a terminal `width` columns wide (0: no limit).
  std::string render(int width) const;

 private:
  std::vector<std::string> headers_;
  std::vector<std::vector<std::string>> rows_;
};

/// Records a Result into a RunRecord (value text, or "<type>: <message>").
template <class T, class Fmt>
void record_result(RunRecord& r, const Result<T>& res, Fmt&& format_value) {
  if (res.ok()) {
    ++r.ok;
    r.results.push_back(format_value(res.value()));
    r.result_ok.push_back(true);
  } else {
    ++r.failed;
    r.results.push_back(res.error().describe());
    r.result_ok.push_back(false);
  }
}

}  // namespace concur::demo
