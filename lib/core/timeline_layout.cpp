// SPDX-License-Identifier: BSL-1.0
#include "core/timeline_layout.hpp"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>

namespace concur::trace::detail {

namespace {

// Length of the union of [start, end) intervals.
Nanos union_length(std::vector<std::pair<Nanos, Nanos>> v) {
  std::sort(v.begin(), v.end());
  Nanos total{0}, cur_s{0}, cur_e{0};
  bool any = false;
  for (auto [s, e] : v) {
    if (!any || s > cur_e) {
      if (any) total += cur_e - cur_s;
      cur_s = s;
      cur_e = e;
      any = true;
    } else {
      cur_e = std::max(cur_e, e);
    }
  }
  if (any) total += cur_e - cur_s;
  return total;
}

}  // namespace

TimelineLayout lay_out(const Trace& t, int width) {
  TimelineLayout l;
  l.width = std::max(400, width);
  l.plot_w = l.width - l.left - l.right;

  l.t0 = t.tasks.empty() ? Nanos(0) : t.tasks.front().start;
  l.t1 = l.t0;
  for (const TaskRecord& task : t.tasks) {
    l.t0 = std::min(l.t0, task.start);
    l.t1 = std::max(l.t1, task.end);
  }
  for (const StallRecord& s : t.stalls) {
    l.t0 = std::min(l.t0, s.start);
    l.t1 = std::max(l.t1, s.end);
  }
  l.range_ms = std::max(ms(l.t1 - l.t0), 1e-3);

  std::vector<TimelineLane>& lanes = l.lanes;
  for (const TaskRecord& task : t.tasks) {
    auto [it, fresh] = l.lane_index.try_emplace({task.pid, task.tid}, lanes.size());
    if (fresh) lanes.push_back(TimelineLane{task.pid, task.tid, {}, {}, 0, Nanos(0), 0, 0});
    lanes[it->second].tasks.push_back(&task);
  }
  std::map<std::pair<int, std::uint64_t>, std::vector<std::pair<Nanos, Nanos>>> ran_on;
  for (const TaskRecord& task : t.tasks)
    for (const Segment& s : task.segments)
      if (s.kind == Segment::running) ran_on[{task.pid, s.tid}].push_back({s.start, s.end});
  int total_rows = 0;
  for (TimelineLane& lane : lanes) {
    // Tasks arrive in start order; each takes the row that came free first.
    using Free = std::pair<Nanos, int>;  // (end of its last task, row)
    std::priority_queue<Free, std::vector<Free>, std::greater<>> free_rows;
    int rows = 0;
    for (const TaskRecord* task : lane.tasks) {
      int row;
      if (!free_rows.empty() && free_rows.top().first <= task->start) {
        row = free_rows.top().second;
        free_rows.pop();
      } else {
        row = rows++;
      }
      free_rows.push({task->end, row});
      lane.row_of.push_back(row);
    }
    lane.rows = rows;
    lane.busy = union_length(ran_on[{lane.pid, lane.tid}]);
    total_rows += lane.rows;
  }
  // Rows from 18 px down to one pixel; when even that does not fit, one row
  // in `sample` is drawn (rows are interchangeable: each holds tasks one
  // after another) and the subtitle says how many tasks that left out.
  constexpr double kPlotBudget = 560;
  l.sample = total_rows <= kPlotBudget
                 ? 1
                 : static_cast<int>(std::ceil(static_cast<double>(total_rows) / kPlotBudget));
  const int sample = l.sample;
  int drawn_rows = 0;
  for (const TimelineLane& lane : lanes) drawn_rows += (lane.rows + sample - 1) / sample;
  l.row_h = std::clamp(kPlotBudget / std::max(drawn_rows, 1), 1.0, 18.0);
  const double lane_min = 30;
  // The aggregate strip (every task counted) sits above the lanes.
  l.strip_h = t.tasks.empty() ? 0 : 56;
  const double strip_gap = t.tasks.empty() ? 0 : 10;
  double y = l.top + l.strip_h + strip_gap;
  for (TimelineLane& lane : lanes) {
    lane.y = y;
    lane.height =
        std::max(lane_min, ((lane.rows + sample - 1) / sample) * l.row_h + 2 * l.lane_pad);
    y += lane.height + l.lane_gap;
  }
  for (const TimelineLane& lane : lanes) {
    for (std::size_t k = 0; k < lane.tasks.size(); ++k) {
      if (lane.row_of[k] % sample != 0) continue;
      ++l.drawn;
      if (l.x_of(lane.tasks[k]->end) - l.x_of(lane.tasks[k]->start) < 1) ++l.narrow;
    }
  }
  if (lanes.empty()) y += 40;
  l.lanes_end = y;
  l.height = y + l.axis_h;
  return l;
}

}  // namespace concur::trace::detail
