// SPDX-License-Identifier: BSL-1.0
// The demos' progress line on stderr: concur::ProgressLine (a public header,
// concur/progress.hpp, so applications draw the same line).
//
//   concur::demo::ProgressMeter meter("thread_pool / cpu", calls.size(), !json);
//   ex->gather_settled(calls, {.on_progress = meter.callback()});
//   meter.finish();
#pragma once

#include <concur/progress.hpp>
#include <cstddef>
#include <string>
#include <utility>

namespace concur::demo {

class ProgressMeter : public concur::ProgressLine {
 public:
  /// `allowed`: false for --json and the like; stderr must also be a terminal.
  ProgressMeter(std::string label, std::size_t total, bool allowed)
      : ProgressLine(std::move(label), total, ProgressLineOptions{.enabled = allowed}) {}
};

}  // namespace concur::demo
