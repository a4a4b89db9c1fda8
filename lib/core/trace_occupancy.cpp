// SPDX-License-Identifier: BSL-1.0
#include "core/trace_occupancy.hpp"

#include <sched.h>

#include <algorithm>
#include <map>
#include <thread>
#include <utility>

namespace concur::trace {

namespace detail {

std::vector<Step> occupancy(const Trace& t) {
  // +1/-1 changes of the two counts.
  struct Change {
    Nanos at;
    int in_flight;
    int running;
  };
  std::vector<Change> changes;
  changes.reserve(t.tasks.size() * 4);
  std::map<std::pair<int, std::uint64_t>, std::vector<std::pair<Nanos, Nanos>>> per_thread;
  for (const TaskRecord& task : t.tasks) {
    if (task.end <= task.start) continue;
    changes.push_back({task.start, +1, 0});
    changes.push_back({task.end, -1, 0});
    for (const Segment& s : task.segments)
      if (s.kind == Segment::running && s.end > s.start)
        per_thread[{task.pid, s.tid}].push_back({s.start, s.end});
  }
  // A thread counts once while any of its tasks runs: merge its stretches.
  for (auto& [lane, v] : per_thread) {
    std::sort(v.begin(), v.end());
    Nanos s = v.front().first, e = v.front().second;
    for (const auto& [a, b] : v) {
      if (a > e) {
        changes.push_back({s, 0, +1});
        changes.push_back({e, 0, -1});
        s = a;
        e = b;
      } else {
        e = std::max(e, b);
      }
    }
    changes.push_back({s, 0, +1});
    changes.push_back({e, 0, -1});
  }
  std::sort(changes.begin(), changes.end(),
            [](const Change& a, const Change& b) { return a.at < b.at; });
  std::vector<Step> steps;
  Step cur;
  for (std::size_t i = 0; i < changes.size();) {
    const Nanos at = changes[i].at;
    for (; i < changes.size() && changes[i].at == at; ++i) {
      cur.in_flight += changes[i].in_flight;
      cur.running += changes[i].running;
    }
    cur.at = at;
    steps.push_back(cur);
  }
  return steps;
}

unsigned usable_cpus() noexcept {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1U, std::thread::hardware_concurrency());
}

}  // namespace detail

double average_on_cpu(const Trace& t, unsigned cpus) {
  const auto steps = detail::occupancy(t);
  if (steps.size() < 2) return 0;
  const int cap = static_cast<int>(cpus == 0 ? detail::usable_cpus() : cpus);
  double area = 0;
  for (std::size_t i = 0; i + 1 < steps.size(); ++i)
    area += static_cast<double>(std::min(steps[i].running, cap)) *
            static_cast<double>((steps[i + 1].at - steps[i].at).count());
  const double span = static_cast<double>((steps.back().at - steps.front().at).count());
  return span > 0 ? area / span : 0;
}

}  // namespace concur::trace
