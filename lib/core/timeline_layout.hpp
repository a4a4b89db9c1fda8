// SPDX-License-Identifier: BSL-1.0
// Where everything of the timeline picture goes (timeline_svg.cpp draws it):
// one lane per thread (or worker process), each as tall as the most tasks it
// had alive at once, bars packed greedily into rows.
//
// Sizing rule so that 4 tasks and 1,000 both read: the row height shrinks
// from 18 px to one pixel so the whole plot stays within about 560 px. Past
// that, one row in k is drawn, and the picture says so: never a bar under a
// pixel, and never a silent drop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <utility>
#include <vector>

#include "concur/trace.hpp"

namespace concur::trace::detail {

inline double ms(Nanos n) { return static_cast<double>(n.count()) / 1e6; }

struct TimelineLane {
  int pid;
  std::uint64_t tid;
  std::vector<const TaskRecord*> tasks;  // in start order
  std::vector<int> row_of;               // parallel to tasks
  int rows = 0;
  Nanos busy{0};  // time some task ran on this thread
  double y = 0, height = 0;
};

struct TimelineLayout {
  // Margins around the plot, and its width, in px.
  static constexpr double left = 190, right = 24, top = 78, axis_h = 40;
  static constexpr double lane_pad = 4, lane_gap = 6;
  int width = 0;
  double plot_w = 0;

  // Time range: from the first task's start (or the first stall) to the last end.
  Nanos t0{0}, t1{0};
  double range_ms = 0;
  double x_of(Nanos n) const { return left + ms(n - t0) / range_ms * plot_w; }

  // Lanes in order of first use.
  std::vector<TimelineLane> lanes;
  std::map<std::pair<int, std::uint64_t>, std::size_t> lane_index;

  int sample = 1;        // one row in `sample` is drawn
  double row_h = 0;      // px per row
  double strip_h = 0;    // the aggregate strip above the lanes (0: no tasks)
  double lanes_end = 0;  // y below the last lane and its gap
  double height = 0;     // of the whole picture
  // Tasks drawn (on a sampled row), and those of them under a pixel wide.
  std::size_t drawn = 0, narrow = 0;

  double plot_bottom() const { return lanes_end - lane_gap; }
};

/// The layout of `t` in a picture `width` px wide (at least 400).
TimelineLayout lay_out(const Trace& t, int width);

}  // namespace concur::trace::detail
