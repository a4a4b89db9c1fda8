// SPDX-License-Identifier: BSL-1.0
// Server-sent events (the WHATWG "text/event-stream" format) as a chat
// completion stream sends them: bytes in, in whatever pieces the network
// delivers, complete events out. No I/O here, so it is testable on its own.
#pragma once

#include <functional>
#include <string>
#include <string_view>

namespace concur::llm::sse {

class Parser {
 public:
  /// Hears the data of each complete event (its "data:" lines joined by
  /// '\n'); events without data (comments, keep-alives) are skipped.
  using EventHandler = std::function<void(std::string_view data)>;
  explicit Parser(EventHandler on_event) : on_event_(std::move(on_event)) {}

  /// Feeds the next bytes; calls the handler for every event they complete.
  void feed(std::string_view bytes);
  /// Whether bytes of an unfinished event are buffered (a stream that ended
  /// mid-event was cut off).
  bool pending() const noexcept { return !line_.empty() || !data_.empty(); }

 private:
  void line(std::string_view l);
  EventHandler on_event_;
  std::string line_;  // the current line so far
  std::string data_;  // the current event's data so far
  bool have_data_ = false;
  bool skip_lf_ = false;  // the last byte was CR: a following LF ends nothing
};

}  // namespace concur::llm::sse
