// SPDX-License-Identifier: BSL-1.0
// Chrome trace-event JSON (the format of chrome://tracing and Perfetto's
// legacy importer): https://docs.google.com/document/d/1CvAClvFfyA5R-PhYUmn5OOQtYMH4h6I0nSsKchNAySU
//
// Two views of the same tasks:
//  - per thread, a B/E slice for each stretch a task ran on it. A task parked
//    in a wait (a sleep, an HTTP exchange, a nested gather) leaves a gap on
//    its thread, where other tasks' slices go. A thread runs one coroutine
//    at a time and a child started eagerly runs inside its parent's stretch,
//    so slices nest; should two overlap otherwise (a wait the trace missed),
//    the later one is clipped to keep the nesting the format needs;
//  - per task, an async b/e span (id = task id) with its waits nested inside,
//    so overlapping tasks of one event-loop thread each get their own row.
// Stalls are instant events on the thread they held.
#include <fmt/format.h>

#include <algorithm>
#include <fstream>
#include <map>
#include <ostream>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "concur/trace.hpp"

namespace concur::trace {

namespace {

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += fmt::format("\\u{:04x}", static_cast<unsigned>(c));
        } else {
          out += c;
        }
    }
  }
  return out;
}

double us(Nanos n) { return static_cast<double>(n.count()) / 1000.0; }

struct Slice {
  Nanos start, end;
  const TaskRecord* task;
};

class Writer {
 public:
  explicit Writer(std::ostream& out) : out_(out) {}
  void event(const std::string& body) {
    out_ << (first_ ? "\n" : ",\n") << '{' << body << '}';
    first_ = false;
  }

 private:
  std::ostream& out_;
  bool first_ = true;
};

std::string executors_of(const Trace& t) {
  std::set<std::string> names;
  for (const TaskRecord& task : t.tasks) names.insert(task.executor);
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out.empty() ? "no tasks" : out;
}

}  // namespace

void write_chrome_json(const Trace& t, std::ostream& out) {
  out << R"({"displayTimeUnit":"ms","otherData":{"generator":"concur",)"
      << fmt::format(R"("executors":"{}","tasks":{},"duration_ms":{:.3f}}},)",
                     escape(executors_of(t)), t.tasks.size(), us(t.duration) / 1000.0)
      << R"("traceEvents":[)";
  Writer w(out);

  // Names for the process rows and thread rows.
  std::set<int> pids{t.pid};
  for (const TaskRecord& task : t.tasks) pids.insert(task.pid);
  for (int pid : pids) {
    const std::string label = pid == t.pid ? fmt::format("concur {} (pid {})", executors_of(t), pid)
                                           : fmt::format("worker process {}", pid);
    w.event(fmt::format(
        R"("name":"process_name","ph":"M","ts":0,"pid":{},"tid":0,"args":{{"name":"{}"}})", pid,
        escape(label)));
  }
  const auto lanes = t.lanes();
  for (std::size_t i = 0; i < lanes.size(); ++i) {
    const auto [pid, tid] = lanes[i];
    w.event(fmt::format(
        R"J("name":"thread_name","ph":"M","ts":0,"pid":{},"tid":{},"args":{{"name":"lane {} (tid {})"}})J",
        pid, tid, i + 1, tid));
    w.event(fmt::format(
        R"("name":"thread_sort_index","ph":"M","ts":0,"pid":{},"tid":{},"args":{{"sort_index":{}}})",
        pid, tid, i));
  }

  // Per thread: the stretches tasks ran there, as properly nested B/E pairs.
  std::map<std::pair<int, std::uint64_t>, std::vector<Slice>> per_thread;
  for (const TaskRecord& task : t.tasks) {
    for (const Segment& s : task.segments) {
      if (s.kind == Segment::running && s.end > s.start)
        per_thread[{task.pid, s.tid}].push_back({s.start, s.end, &task});
    }
  }
  for (auto& [lane, slices] : per_thread) {
    std::sort(slices.begin(), slices.end(), [](const Slice& a, const Slice& b) {
      return a.start != b.start ? a.start < b.start : a.end > b.end;
    });
    std::vector<Slice> stack;
    auto end_top = [&] {
      const Slice& s = stack.back();
      w.event(fmt::format(R"("name":"{}","cat":"run","ph":"E","ts":{:.3f},"pid":{},"tid":{})",
                          escape(s.task->name), us(s.end), lane.first, lane.second));
      stack.pop_back();
    };
    for (Slice s : slices) {
      while (!stack.empty() && stack.back().end <= s.start) end_top();
      if (!stack.empty() && s.end > stack.back().end) s.end = stack.back().end;  // clip
      if (s.end <= s.start) continue;
      w.event(fmt::format(
          R"("name":"{}","cat":"run","ph":"B","ts":{:.3f},"pid":{},"tid":{},"args":{{"task":{}}})",
          escape(s.task->name), us(s.start), lane.first, lane.second, s.task->id));
      stack.push_back(s);
    }
    while (!stack.empty()) end_top();
  }

  // Per task: its whole life, with its waits nested inside.
  for (const TaskRecord& task : t.tasks) {
    const std::string name = escape(task.name);
    w.event(fmt::format(
        R"("name":"{}","cat":"task","ph":"b","id":{},"ts":{:.3f},"pid":{},"tid":{},)"
        R"("args":{{"executor":"{}","parent":{},"fiber":{},"failed":{},"waited_ms":{:.3f}}})",
        name, task.id, us(task.start), task.pid, task.tid, escape(task.executor), task.parent,
        task.fiber, task.failed, us(task.waited()) / 1000.0));
    for (const Segment& s : task.segments) {
      if (s.kind != Segment::waiting) continue;
      w.event(fmt::format(
          R"("name":"wait","cat":"task","ph":"b","id":{},"ts":{:.3f},"pid":{},"tid":{})", task.id,
          us(s.start), task.pid, s.tid));
      w.event(fmt::format(
          R"("name":"wait","cat":"task","ph":"e","id":{},"ts":{:.3f},"pid":{},"tid":{})", task.id,
          us(s.end), task.pid, s.tid));
    }
    w.event(
        fmt::format(R"("name":"{}","cat":"task","ph":"e","id":{},"ts":{:.3f},"pid":{},"tid":{})",
                    name, task.id, us(task.end), task.pid, task.tid));
  }

  for (const StallRecord& s : t.stalls) {
    w.event(fmt::format(
        R"("name":"stall: {}","cat":"stall","ph":"i","s":"t","ts":{:.3f},"pid":{},"tid":{},)"
        R"("args":{{"executor":"{}","held_ms":{:.3f},"since_us":{:.3f}}})",
        escape(s.task), us(s.end), s.pid, s.tid, escape(s.executor), us(s.end - s.start) / 1000.0,
        us(s.start)));
  }
  out << "\n]}\n";
}

void write_chrome_json(const Trace& t, const std::string& path) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  if (!f) throw std::runtime_error("concur::trace: cannot write '" + path + "'");
  write_chrome_json(t, f);
  f.flush();
  if (!f) throw std::runtime_error("concur::trace: error writing '" + path + "'");
}

}  // namespace concur::trace
