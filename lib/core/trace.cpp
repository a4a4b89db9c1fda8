// SPDX-License-Identifier: BSL-1.0
// Questions asked of a recorded Trace (the value type of concur/trace.hpp).
#include <algorithm>
#include <utility>
#include <vector>

#include "concur/trace.hpp"

namespace concur::trace {

Nanos TaskRecord::waited() const {
  Nanos w{0};
  for (const Segment& s : segments)
    if (s.kind == Segment::waiting) w += s.end - s.start;
  return w;
}

std::vector<std::pair<int, std::uint64_t>> Trace::lanes() const {
  std::vector<std::pair<int, std::uint64_t>> out;
  for (const TaskRecord& task : tasks) {
    const std::pair<int, std::uint64_t> lane{task.pid, task.tid};
    if (std::find(out.begin(), out.end(), lane) == out.end()) out.push_back(lane);
  }
  return out;
}

Nanos Trace::span() const {
  if (tasks.empty()) return Nanos(0);
  Nanos first = tasks.front().start, last = tasks.front().end;
  for (const TaskRecord& task : tasks) {
    first = std::min(first, task.start);
    last = std::max(last, task.end);
  }
  return last - first;
}

}  // namespace concur::trace
