// SPDX-License-Identifier: BSL-1.0
#include "sse_stream.hpp"

#include <boost/asio/write.hpp>
#include <boost/json.hpp>
#include <ctime>

namespace concur::fake_llm::detail {

namespace json = boost::json;
namespace beast = boost::beast;
namespace http = beast::http;

namespace {

// Splits UTF-8 text after every `n` code points, never inside one.
std::vector<std::string_view> pieces(std::string_view s, std::size_t n) {
  std::vector<std::string_view> out;
  std::size_t start = 0, count = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if ((c & 0xC0) != 0x80) {  // the first byte of a code point
      if (count == n) {
        out.push_back(s.substr(start, i - start));
        start = i;
        count = 0;
      }
      ++count;
    }
  }
  if (start < s.size()) out.push_back(s.substr(start));
  return out;
}

std::string event(const json::object& o) { return "data: " + json::serialize(o) + "\n\n"; }

}  // namespace

std::vector<std::string> stream_events(const ChatRequest& req, std::string_view content,
                                       std::uint64_t id, std::size_t piece_chars) {
  // The same id scheme as completion_body, so streamed and plain replies look alike.
  const json::value whole = json::parse(completion_body(req, content, id));
  const json::object& w = whole.get_object();
  const auto chunk = [&](json::object delta, json::value finish) {
    return json::object{{"id", w.at("id")},
                        {"object", "chat.completion.chunk"},
                        {"created", w.at("created")},
                        {"model", w.at("model")},
                        {"system_fingerprint", w.at("system_fingerprint")},
                        {"choices", json::array{json::object{{"index", 0},
                                                             {"delta", std::move(delta)},
                                                             {"logprobs", nullptr},
                                                             {"finish_reason", finish}}}}};
  };
  std::vector<std::string> out;
  out.push_back(event(chunk(json::object{{"role", "assistant"}, {"content", ""}}, nullptr)));
  for (std::string_view p : pieces(content, piece_chars))
    out.push_back(event(chunk(json::object{{"content", p}}, nullptr)));
  out.push_back(event(chunk(json::object{}, "stop")));
  if (req.include_usage) {
    json::object u = chunk(json::object{}, nullptr);
    u["choices"] = json::array{};
    u["usage"] = w.at("usage");
    out.push_back(event(u));
  }
  out.push_back("data: [DONE]\n\n");
  return out;
}

SseStream::SseStream(beast::tcp_stream& stream, boost::asio::steady_timer& timer,
                     http::response<http::empty_body> header, std::vector<std::string> events,
                     std::chrono::milliseconds interval, Done done)
    : stream_(stream),
      timer_(timer),
      header_(std::move(header)),
      serializer_(header_),
      events_(std::move(events)),
      interval_(interval),
      done_(std::move(done)) {
  header_.chunked(true);
}

void SseStream::start() {
  http::async_write_header(stream_, serializer_,
                           [self = shared_from_this()](beast::error_code ec, std::size_t) {
                             if (ec) return self->done_(ec);
                             self->next(0);
                           });
}

// Event 0 (the role) and 1 (the first content) go together; later ones wait
// `interval` each, as tokens trickle out of a real model.
void SseStream::next(std::size_t i) {
  if (i == events_.size()) {
    boost::asio::async_write(
        stream_, http::make_chunk_last(),
        [self = shared_from_this()](beast::error_code ec, std::size_t) { self->done_(ec); });
    return;
  }
  auto write = [self = shared_from_this(), i] {
    boost::asio::async_write(self->stream_, http::make_chunk(boost::asio::buffer(self->events_[i])),
                             [self, i](beast::error_code ec, std::size_t) {
                               if (ec) return self->done_(ec);
                               self->next(i + 1);
                             });
  };
  if (i < 2 || interval_.count() == 0) return write();
  timer_.expires_after(interval_);
  timer_.async_wait([write, self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->done_(ec);
    write();
  });
}

}  // namespace concur::fake_llm::detail
