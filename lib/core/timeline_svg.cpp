// SPDX-License-Identifier: BSL-1.0
// The timeline picture: one lane per thread (or worker process), one bar per
// task, solid while it runs and hatched while it waits. Concurrency shows as
// many hatched bars stacked in one lane; parallelism as solid bars side by
// side in several lanes. Where lanes and rows go (and how 1,000 tasks still
// fit) is timeline_layout.cpp; this file draws. Above the lanes an aggregate
// strip counts every task: how many were in flight and how many threads were
// running one, over time, so a batch of 1,000 overlapping waits can still be
// read (and counted) at a glance.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/trace.hpp"
#include "core/timeline_layout.hpp"
#include "core/trace_occupancy.hpp"

namespace concur::trace {

namespace {

using detail::ms;

std::string xml(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters are not allowed in XML 1.0 text.
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\t' || c == '\n') out += c;
    }
  }
  return out;
}

// Classes rather than per-element attributes keep a 1,000-task picture small.
constexpr std::string_view kStyle =
    "<style>"
    ".run{fill:#2f6fce}.wait{fill:url(#hatch)}"
    ".failed .run{fill:#c0392b}.failed .wait{fill:url(#hatch-failed)}"
    ".lane{fill:#f4f6f9}.lane-alt{fill:#eceff4}.grid{stroke:#d5dae2;stroke-width:1}"
    ".label{font-size:13px;fill:#1d2733;font-weight:bold}"
    ".sub{font-size:11px;fill:#5b6878}.tick{font-size:11px;fill:#5b6878}"
    ".name{font-size:11px;fill:#fff}"
    ".stall{fill:#e74c3c;fill-opacity:0.18;stroke:#c0392b;stroke-width:1.2}"
    ".strip{fill:#f4f6f9}.flight{fill:#cfe0f7;stroke:#7fa8e0;stroke-width:1}"
    ".busy{fill:#2f6fce}"
    "</style>";
// Rows a few pixels high show a hatch as noise: waiting is drawn pale instead.
constexpr std::string_view kThinStyle = "<style>.wait{fill:#c4d8f4}</style>";

std::string duration_text(double ms_value) {
  if (ms_value >= 1000) return fmt::format("{:.2f} s", ms_value / 1000);
  if (ms_value >= 10) return fmt::format("{:.0f} ms", ms_value);
  if (ms_value >= 1) return fmt::format("{:.1f} ms", ms_value);
  return fmt::format("{:.0f} µs", ms_value * 1000);
}

// A tick step of 1, 2 or 5 x 10^k giving at most ~10 ticks over `range_ms`.
double tick_step(double range_ms) {
  if (range_ms <= 0) return 1;
  const double raw = range_ms / 10;
  const double p = std::pow(10.0, std::floor(std::log10(raw)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * p >= raw) return m * p;
  return 10 * p;
}

std::string executors_of(const Trace& t) {
  std::set<std::string> names;
  for (const TaskRecord& task : t.tasks) names.insert(task.executor);
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

// 0.001 -> "<0.01", 0.013 -> "0.01", 3.46 -> "3.5", 31.2 -> "31".
std::string mean_text(double v) {
  if (v > 0 && v < 0.005) return "<0.01";
  if (v >= 10) return fmt::format("{:.0f}", v);
  if (v >= 1) return fmt::format("{:.1f}", v);
  return fmt::format("{:.2f}", v);
}

// The aggregate strip: per pixel column, the time-averaged number of tasks in
// flight (pale) and of threads running one (dark), on one scale from 0 to the
// peak in flight, with both peaks in the label.
void write_strip(std::ostream& out, const Trace& t, Nanos t0, Nanos t1, double left, double top,
                 double plot_w, double strip_h) {
  const std::vector<detail::Step> steps = detail::occupancy(t);
  int peak_flight = 0, peak_running = 0;
  double area_flight = 0, area_running = 0;  // count x ns
  for (std::size_t k = 0; k < steps.size(); ++k) {
    peak_flight = std::max(peak_flight, steps[k].in_flight);
    peak_running = std::max(peak_running, steps[k].running);
    if (k + 1 == steps.size()) break;
    const double d = static_cast<double>((steps[k + 1].at - steps[k].at).count());
    area_flight += steps[k].in_flight * d;
    area_running += steps[k].running * d;
  }
  const int columns = std::max(1, static_cast<int>(std::lround(plot_w)));
  const double c_w = plot_w / columns;
  const double span = static_cast<double>(std::max<Nanos::rep>((t1 - t0).count(), 1));
  const double dt = span / columns;
  const double mean_flight = area_flight / span, mean_running = area_running / span;
  std::vector<double> flight(columns, 0), running(columns, 0);
  std::size_t i = 0;
  for (int c = 0; c < columns; ++c) {
    const double c0 = static_cast<double>(t0.count()) + c * dt, c1 = c0 + dt;
    while (i + 1 < steps.size() && static_cast<double>(steps[i + 1].at.count()) <= c0) ++i;
    for (std::size_t j = i; j + 1 < steps.size(); ++j) {
      const double a = std::max(c0, static_cast<double>(steps[j].at.count()));
      const double b = std::min(c1, static_cast<double>(steps[j + 1].at.count()));
      if (a >= c1) break;
      if (b <= a) continue;
      flight[c] += steps[j].in_flight * (b - a) / dt;
      running[c] += steps[j].running * (b - a) / dt;
    }
  }
  const double base = top + strip_h - 4, scale = (strip_h - 10) / std::max(peak_flight, 1);
  // A step outline, one point per change of height (rounded to 0.1 px).
  auto area = [&](const std::vector<double>& v) {
    std::string d = fmt::format("M{:.1f},{:.1f}", left, base);
    double last = -1;
    for (int c = 0; c < columns; ++c) {
      const double h = std::round(v[c] * scale * 10) / 10;
      if (h != last) {
        d += fmt::format("L{:.1f},{:.1f}L{:.1f},{:.1f}", left + c * c_w, base - std::max(last, 0.0),
                         left + c * c_w, base - h);
        last = h;
      }
    }
    d += fmt::format("L{:.1f},{:.1f}L{:.1f},{:.1f}Z", left + plot_w, base - std::max(last, 0.0),
                     left + plot_w, base);
    return d;
  };
  out << fmt::format(
             R"(<g class="aggregate" data-peak-in-flight="{}" data-peak-running="{}"><title>all {} tasks: in flight (pale) and threads running one (dark), averaged per pixel; peaks {} and {}</title>)",
             peak_flight, peak_running, t.tasks.size(), peak_flight, peak_running)
      << fmt::format(
             R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="strip"/>)", left,
             top, plot_w, strip_h)
      << fmt::format(R"(<path class="flight" d="{}"/>)", area(flight))
      << fmt::format(R"(<path class="busy" d="{}"/>)", area(running))
      << fmt::format(
             R"(<text x="{:.1f}" y="{:.1f}" class="label" text-anchor="end">all tasks</text>)",
             left - 10, top + 16)
      << fmt::format(
             R"(<text x="{:.1f}" y="{:.1f}" class="sub" text-anchor="end">in flight ≤{}, avg {}</text>)",
             left - 10, top + 31, peak_flight, xml(mean_text(mean_flight)))
      << fmt::format(
             R"(<text x="{:.1f}" y="{:.1f}" class="sub" text-anchor="end">running ≤{}, avg {}</text>)",
             left - 10, top + 45, peak_running, xml(mean_text(mean_running)))
      << "</g>\n";
}

}  // namespace

void write_svg(const Trace& t, std::ostream& out, const SvgOptions& o) {
  const detail::TimelineLayout l = detail::lay_out(t, o.width);
  const int width = l.width;
  const double left = l.left, right = l.right, top = l.top;
  const double plot_w = l.plot_w, range_ms = l.range_ms, row_h = l.row_h, height = l.height;
  const std::vector<detail::TimelineLane>& lanes = l.lanes;
  const int sample = l.sample;
  const std::size_t drawn = l.drawn, narrow = l.narrow;
  auto x_of = [&](Nanos n) { return l.x_of(n); };
  const Nanos t0 = l.t0;

  // --- header --------------------------------------------------------------
  const std::string executors = executors_of(t);
  const std::string title =
      o.title.empty() ? "concur · " + (executors.empty() ? std::string("no tasks") : executors)
                      : o.title;
  const double wall_ms = o.wall_s > 0 ? o.wall_s * 1000 : ms(t.span());
  std::size_t failed = 0;
  for (const TaskRecord& task : t.tasks) failed += task.failed ? 1 : 0;
  std::string subtitle = fmt::format("{} task{} on {} lane{} · wall {}", t.tasks.size(),
                                     t.tasks.size() == 1 ? "" : "s", lanes.size(),
                                     lanes.size() == 1 ? "" : "s", duration_text(wall_ms));
  if (failed > 0) subtitle += fmt::format(" · {} failed", failed);
  if (!t.stalls.empty()) subtitle += fmt::format(" · {} stall report(s)", t.stalls.size());
  // What the bars leave out, said where it is seen.
  std::string note;
  if (sample > 1)
    note = fmt::format("bars: 1 row in {} drawn ({} of {} tasks); the strip above counts all",
                       sample, drawn, t.tasks.size());
  if (narrow > 0)
    note += fmt::format("{}{} bar{} shorter than a pixel ({}) drawn 1 px wide",
                        note.empty() ? "" : " · ", narrow, narrow == 1 ? "" : "s",
                        duration_text(range_ms / plot_w));

  out << fmt::format(
      R"SVG(<?xml version="1.0" encoding="UTF-8"?>
<svg xmlns="http://www.w3.org/2000/svg" width="{0}" height="{1:.0f}" viewBox="0 0 {0} {1:.0f}" font-family="DejaVu Sans, Helvetica, Arial, sans-serif" data-tasks="{5}" data-drawn="{6}" data-row-sample="{7}">
<title>{2}</title>
<defs>
<pattern id="hatch" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><rect width="6" height="6" fill="#cfe0f7"/><line x1="0" y1="0" x2="0" y2="6" stroke="#7fa8e0" stroke-width="2.2"/></pattern>
<pattern id="hatch-failed" patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)"><rect width="6" height="6" fill="#f6d5d1"/><line x1="0" y1="0" x2="0" y2="6" stroke="#e08a80" stroke-width="2.2"/></pattern>
</defs>
{4}
<rect width="{0}" height="{1:.0f}" fill="#ffffff"/>
<text x="16" y="26" font-size="18" font-weight="bold" fill="#1d2733">{2}</text>
<text x="16" y="46" font-size="13" fill="#3c4754">{3}</text>
)SVG",
      width, height, xml(title), xml(subtitle), kStyle, t.tasks.size(), drawn, sample);
  if (row_h < 4) out << kThinStyle << '\n';
  if (!note.empty())
    out << fmt::format(R"(<text x="16" y="64" class="sub" data-note="sampling">{}</text>)",
                       xml(note))
        << '\n';

  // Legend, right-aligned on the subtitle line.
  {
    struct Key {
      std::string_view paint, label;
      double width;  // to the next key
    };
    constexpr Key keys[] = {{R"(class="run")", "running", 82},
                            {R"(class="wait")", "waiting", 80},
                            {R"(fill="#c0392b")", "failed", 72},
                            {R"(class="stall")", "stall", 0}};
    double lx = width - right - 330;
    const double ly = 56;
    for (const Key& k : keys) {
      out << fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="18" height="11" {}/>)", lx, ly,
                         k.paint)
          << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="sub">{}</text>)", lx + 23, ly + 10,
                         k.label);
      lx += k.width;
    }
    out << '\n';
  }

  // --- lanes and grid ------------------------------------------------------
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    const detail::TimelineLane& lane = lanes[i];
    out << fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" class="{}"/>)",
                       left, lane.y, plot_w, lane.height, i % 2 == 0 ? "lane" : "lane-alt");
    const bool worker = lane.pid != t.pid;
    const std::string name =
        worker ? fmt::format("process {}", i + 1) : fmt::format("thread {}", i + 1);
    const double busy_pct = 100.0 * ms(lane.busy) / range_ms;
    // A lane that ran a little is not "0%" busy.
    const std::string busy_text =
        busy_pct > 0 && busy_pct < 0.5 ? std::string("<1") : fmt::format("{:.0f}", busy_pct);
    const std::string detail = fmt::format("{} {} · busy {}%", worker ? "pid" : "tid",
                                           worker ? lane.tid : lane.tid, busy_text);
    const double mid = lane.y + std::min(lane.height, 40.0) / 2;
    out << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="label" text-anchor="end">{}</text>)",
                       left - 10, mid, xml(name))
        << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="sub" text-anchor="end">{}</text>)",
                       left - 10, mid + 14, xml(detail))
        << '\n';
  }
  const double plot_bottom = l.plot_bottom();
  const double step = tick_step(range_ms);
  const bool in_s = range_ms >= 2000;
  for (double v = 0; v <= range_ms * 1.0001; v += step) {
    const double x = left + v / range_ms * plot_w;
    const std::string label = in_s ? fmt::format("{:g} s", v / 1000) : fmt::format("{:g} ms", v);
    out << fmt::format(
               R"(<line x1="{0:.1f}" y1="{1:.1f}" x2="{0:.1f}" y2="{2:.1f}" class="grid"/>)", x,
               top - 4, plot_bottom + 4)
        << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="tick" text-anchor="middle">{}</text>)",
                       x, plot_bottom + 20, label)
        << '\n';
  }
  if (lanes.empty()) {
    out << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="sub">no tasks were recorded</text>)",
                       left, top + 24);
  } else {
    write_strip(out, t, t0, l.t1, left, top, plot_w, l.strip_h);
  }

  // --- bars ----------------------------------------------------------------
  const double bar_h = row_h >= 6 ? row_h - 2 : row_h;
  const double bar_off = row_h >= 6 ? 1 : 0;
  for (const detail::TimelineLane& lane : lanes) {
    for (std::size_t k = 0; k < lane.tasks.size(); ++k) {
      if (lane.row_of[k] % sample != 0) continue;  // not a sampled row (stated in the note)
      const TaskRecord& task = *lane.tasks[k];
      const double by = lane.y + l.lane_pad + (lane.row_of[k] / sample) * row_h + bar_off;
      const double x0 = x_of(task.start);
      double x1 = std::max(x_of(task.end), x0 + 1.0);
      // A hairline of background between back-to-back tasks in one row.
      if (x1 - x0 > 4) x1 -= 0.75;
      out << fmt::format(
          R"(<g class="task{}" data-id="{}"><title>{} #{} · {} · {}–{} · ran {} · waited {}{}</title>)",
          task.failed ? " failed" : "", task.id, xml(task.name), task.id, xml(task.executor),
          duration_text(ms(task.start - t0)), duration_text(ms(task.end - t0)),
          duration_text(ms(task.end - task.start - task.waited())),
          duration_text(ms(task.waited())), task.failed ? " · failed" : "");
      // The whole span in the running colour, waits drawn over it.
      out << fmt::format(
          R"(<rect class="run" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}"/>)", x0, by,
          x1 - x0, bar_h);
      for (const Segment& s : task.segments) {
        if (s.kind != Segment::waiting) continue;
        const double wx0 = std::max(x0, x_of(s.start));
        const double wx1 = std::min(x1, x_of(s.end));
        if (wx1 - wx0 < 0.05) continue;
        out << fmt::format(
            R"(<rect class="wait" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}"/>)", wx0, by,
            wx1 - wx0, bar_h);
      }
      const double text_w = 6.6 * static_cast<double>(task.name.size()) + 8;
      if (row_h >= 14 && x1 - x0 >= text_w) {
        // White reads on the solid running colour, dark on the pale hatching.
        const bool mostly_waiting = task.waited() * 2 > task.end - task.start;
        out << fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="name"{}>{}</text>)", x0 + 4,
                           by + bar_h / 2 + 4, mostly_waiting ? R"( style="fill:#1d2733")" : "",
                           xml(task.name));
      }
      out << "</g>\n";
    }
  }

  // --- stalls: the stretch a task held its thread, over that thread's lane --
  for (const StallRecord& s : t.stalls) {
    auto it = l.lane_index.find({s.pid, s.tid});
    const double sy = it != l.lane_index.end() ? lanes[it->second].y : top;
    const double sh = it != l.lane_index.end() ? lanes[it->second].height : plot_bottom - top;
    const double x0 = x_of(s.start), x1 = std::max(x_of(s.end), x0 + 1);
    out << fmt::format(
               R"(<g class="stall-report"><title>stall: '{}' held the {} thread for {}</title><rect class="stall" x="{:.2f}" y="{:.2f}" width="{:.2f}" height="{:.2f}"/></g>)",
               xml(s.task), xml(s.executor), duration_text(ms(s.end - s.start)), x0, sy, x1 - x0,
               sh)
        << '\n';
  }
  out << "</svg>\n";
}

void write_svg(const Trace& t, const std::string& path, const SvgOptions& options) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("concur::trace: cannot write '" + path + "'");
  write_svg(t, f, options);
  f.flush();
  if (!f) throw std::runtime_error("concur::trace: error writing '" + path + "'");
}

}  // namespace concur::trace
