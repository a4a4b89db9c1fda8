// SPDX-License-Identifier: BSL-1.0
#include "llm/sse.hpp"

namespace concur::llm::sse {

void Parser::feed(std::string_view bytes) {
  for (const char c : bytes) {
    if (skip_lf_) {
      skip_lf_ = false;
      if (c == '\n') continue;
    }
    if (c == '\r' || c == '\n') {
      skip_lf_ = c == '\r';
      line(line_);
      line_.clear();
    } else {
      line_.push_back(c);
    }
  }
}

// One line of the stream: an empty one ends the event.
void Parser::line(std::string_view l) {
  if (l.empty()) {
    if (have_data_) on_event_(data_);
    data_.clear();
    have_data_ = false;
    return;
  }
  if (l.front() == ':') return;  // a comment
  const std::size_t colon = l.find(':');
  const std::string_view field = l.substr(0, colon);
  std::string_view value =
      colon == std::string_view::npos ? std::string_view() : l.substr(colon + 1);
  if (!value.empty() && value.front() == ' ') value.remove_prefix(1);
  if (field == "data") {
    if (have_data_) data_.push_back('\n');
    data_.append(value);
    have_data_ = true;
  }
  // "event", "id" and "retry" do not matter to a completion stream.
}

}  // namespace concur::llm::sse
