// SPDX-License-Identifier: BSL-1.0
#include "output.hpp"

#include <fcntl.h>
#include <fmt/format.h>
#include <unistd.h>

#include <algorithm>
#include <boost/json.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace concur::batch {

namespace json = boost::json;

FsyncPolicy parse_fsync(const std::string& text) {
  if (text == "interval") return FsyncPolicy::interval;
  if (text == "always") return FsyncPolicy::always;
  if (text == "never") return FsyncPolicy::never;
  throw std::invalid_argument("bad --fsync '" + text + "': use interval, always or never");
}

LineFile::LineFile(const std::string& path, FsyncPolicy policy, bool truncate)
    : path_(path), policy_(policy), last_sync_(std::chrono::steady_clock::now()) {
  fd_ = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | (truncate ? O_TRUNC : 0),
               0644);
  if (fd_ < 0)
    throw std::runtime_error(
        fmt::format("cannot open '{}' for appending: {}", path, std::strerror(errno)));
}

LineFile::~LineFile() {
  if (fd_ >= 0) {
    if (dirty_) ::fdatasync(fd_);
    ::close(fd_);
  }
}

void LineFile::append(std::string line) {
  line.push_back('\n');
  std::lock_guard lock(mutex_);
  std::size_t off = 0;
  while (off < line.size()) {
    const ssize_t n = ::write(fd_, line.data() + off, line.size() - off);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(
          fmt::format("cannot write to '{}': {}", path_, std::strerror(errno)));
    }
    off += static_cast<std::size_t>(n);
  }
  dirty_ = true;
  const auto now = std::chrono::steady_clock::now();
  if (policy_ == FsyncPolicy::always ||
      (policy_ == FsyncPolicy::interval && now - last_sync_ >= std::chrono::seconds(1))) {
    ::fdatasync(fd_);
    dirty_ = false;
    last_sync_ = now;
  }
}

void LineFile::sync() {
  std::lock_guard lock(mutex_);
  ::fdatasync(fd_);
  dirty_ = false;
  last_sync_ = std::chrono::steady_clock::now();
}

bool is_done(const std::vector<IdKey>& done, const IdKey& key) {
  return std::binary_search(done.begin(), done.end(), key);
}

namespace {

// The custom_id of an output line, and whether it records a failure; nullopt
// if the line is not an output record.
std::optional<std::pair<std::string, bool>> read_record(const std::string& line) {
  json::error_code ec;
  const json::value v = json::parse(line, ec);
  if (ec || !v.is_object()) return std::nullopt;
  const auto& o = v.get_object();
  const auto* id = o.if_contains("custom_id");
  if (id == nullptr || !id->is_string()) return std::nullopt;
  bool failed = false;
  if (const auto* e = o.if_contains("error"); e != nullptr && !e->is_null()) failed = true;
  if (const auto* r = o.if_contains("response"); r != nullptr && r->is_object()) {
    if (const auto* s = r->get_object().if_contains("status_code"); s != nullptr && s->is_int64())
      failed = failed || s->get_int64() < 200 || s->get_int64() >= 300;
  } else {
    failed = true;
  }
  return std::pair{std::string(id->get_string()), failed};
}

}  // namespace

Recovered recover_output(const std::string& path, bool keep_failed_lines) {
  Recovered r;
  std::ifstream in(path, std::ios::binary);
  if (!in) return r;  // no output yet
  std::string line;
  std::uint64_t good_end = 0;  // offset just past the last good line
  std::uint64_t offset = 0;
  std::size_t number = 0;
  std::vector<std::pair<IdKey, std::size_t>> keys;
  std::optional<std::string> bad;  // an unreadable line, allowed only last
  std::size_t bad_number = 0;
  while (std::getline(in, line)) {
    ++number;
    const bool has_newline = !in.eof();
    const std::uint64_t end = offset + line.size() + (has_newline ? 1 : 0);
    if (bad) {
      throw std::runtime_error(fmt::format(
          "output file '{}' line {} is not a Batch output line ('{}'); it is not the last "
          "line, so this is not a torn write: not resuming into this file",
          path, bad_number, bad->substr(0, 80)));
    }
    auto rec = has_newline ? read_record(line) : std::nullopt;
    if (!rec) {
      bad = line;
      bad_number = number;
    } else {
      keys.emplace_back(key_of(rec->first), number);
      if (rec->second && keep_failed_lines) r.failed_lines.push_back(line);
      ++r.lines;
      good_end = end;
    }
    offset = end;
  }
  if (bad) {
    r.torn = true;
    r.torn_text = bad->substr(0, 80);
    if (::truncate(path.c_str(), static_cast<off_t>(good_end)) != 0)
      throw std::runtime_error(
          fmt::format("cannot cut the torn last line off '{}': {}", path, std::strerror(errno)));
  }
  std::sort(keys.begin(), keys.end());
  for (std::size_t i = 1; i < keys.size(); ++i) {
    if (keys[i].first == keys[i - 1].first)
      throw std::runtime_error(fmt::format(
          "output file '{}' holds one custom_id twice (lines {} and {}): not resuming into it",
          path, keys[i - 1].second, keys[i].second));
  }
  r.done.reserve(keys.size());
  for (const auto& [k, n] : keys) r.done.push_back(k);
  return r;
}

namespace {

// A stable id per custom_id, in the shape of OpenAI's "batch_req_...".
std::string request_line_id(const std::string& custom_id) {
  const IdKey k = key_of(custom_id);
  return fmt::format("batch_req_{:016x}{:08x}", k.a, static_cast<std::uint32_t>(k.b));
}

}  // namespace

std::string output_line(const Outcome& o) {
  json::object line;
  line["id"] = request_line_id(o.custom_id);
  line["custom_id"] = o.custom_id;
  if (o.status != 0) {
    json::error_code ec;
    json::value body = json::parse(o.body, ec);
    if (ec) body = json::string(o.body);  // not JSON: kept as text
    line["response"] = json::object{
        {"status_code", o.status}, {"request_id", o.request_id}, {"body", std::move(body)}};
    line["error"] = nullptr;
  } else {
    line["response"] = nullptr;
    line["error"] = json::object{{"code", o.error_code}, {"message", o.error_message}};
  }
  return json::serialize(line);
}

std::string invalid_line(std::size_t line, const std::string& message) {
  json::object o{{"line", line},
                 {"custom_id", nullptr},
                 {"response", nullptr},
                 {"error", json::object{{"code", "invalid_input"}, {"message", message}}}};
  return json::serialize(o);
}

}  // namespace concur::batch
