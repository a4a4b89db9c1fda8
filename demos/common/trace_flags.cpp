// SPDX-License-Identifier: BSL-1.0
#include "trace_flags.hpp"

#include <filesystem>

namespace concur::demo {

std::string file_safe(const std::string& s) {
  std::string out;
  for (char c : s) {
    const bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '_' || c == '.';
    if (keep) {
      out += c;
    } else if (!out.empty() && out.back() != '-') {
      out += '-';
    }
  }
  while (!out.empty() && out.back() == '-') out.pop_back();
  return out.empty() ? "run" : out;
}

TraceFlags::TraceFlags(CLI::App& app, std::string default_timeline)
    : timeline_(std::move(default_timeline)) {
  app.add_option("--trace", trace_,
                 "write a Chrome trace-event JSON per run (open in ui.perfetto.dev); with several "
                 "runs '-<case>-<executor>' goes before the extension, or use {case}/{executor}");
  app.add_option("--timeline", timeline_,
                 "write an SVG timeline per run (lanes = threads/processes, bars = tasks); same "
                 "naming as --trace")
      ->capture_default_str();
}

std::string TraceFlags::path_for(const std::string& pattern, const std::string& executor_label,
                                 const std::string& case_name) const {
  std::string p = pattern;
  const std::string ex = file_safe(executor_label), cs = file_safe(case_name);
  bool spelled = false;
  for (const auto& [key, value] : {std::pair{std::string("{executor}"), ex}, {"{case}", cs}}) {
    for (auto at = p.find(key); at != std::string::npos; at = p.find(key, at + value.size())) {
      p.replace(at, key.size(), value);
      spelled = true;
    }
  }
  if (spelled || runs_ <= 1) return p;
  const std::filesystem::path path(p);
  std::filesystem::path out = path.parent_path() / (path.stem().string() + "-" + cs + "-" + ex);
  out += path.extension();
  return out.string();
}

std::unique_ptr<trace::Recorder> TraceFlags::start(const Executor& ex, bool always) const {
  if (!wanted() && !always) return nullptr;
  return std::make_unique<trace::Recorder>(ex);
}

trace::Trace TraceFlags::finish(std::unique_ptr<trace::Recorder>& rec,
                                const std::string& executor_label, const std::string& case_name,
                                double wall_s, const std::string& title) {
  if (!rec) return {};
  trace::Trace t = rec->stop();
  rec.reset();
  auto prepare = [](const std::string& path) {
    const auto dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    return path;
  };
  if (!trace_.empty()) {
    const std::string path = prepare(path_for(trace_, executor_label, case_name));
    trace::write_chrome_json(t, path);
    written_.push_back(path);
  }
  if (!timeline_.empty()) {
    const std::string path = prepare(path_for(timeline_, executor_label, case_name));
    trace::SvgOptions o;
    o.title = title.empty() ? executor_label + " · " + case_name : title;
    o.wall_s = wall_s;
    trace::write_svg(t, path, o);
    written_.push_back(path);
  }
  return t;
}

}  // namespace concur::demo
