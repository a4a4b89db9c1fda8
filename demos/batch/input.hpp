// SPDX-License-Identifier: BSL-1.0
// concur-batch's input: an OpenAI Batch file (one JSON request per line) or a
// plain file of prompts (one per line), read line by line so memory stays flat.
//
//   {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
//    "body": {"model": "gpt-4o-mini", "messages": [...], ...}}
//
// A Batch line's body is sent as it is (every field: tools, response_format,
// seed, n, ...). A prompt line becomes {"model", "messages": [system?, user]}
// with custom_id "line-N" (N its line number, from 1).
#pragma once

#include <cstdint>
#include <fstream>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

namespace concur::batch {

enum class InputFormat { automatic, batch, prompts };
/// "auto", "batch" or "prompts"; throws std::invalid_argument otherwise.
InputFormat parse_format(const std::string& text);

/// Settings that turn prompt lines into requests.
struct PromptSettings {
  std::string model = "gpt-4o-mini";
  std::string system;  ///< empty: no system message
  std::string url = "/v1/chat/completions";
};

/// One request of the input.
struct Request {
  std::size_t line = 0;  ///< 1-based line number in the input
  std::string custom_id;
  std::string method = "POST";
  std::string url;   ///< as written, e.g. "/v1/chat/completions"
  std::string body;  ///< JSON, sent unchanged
  /// Tokens the request may cost before it is sent (see estimate_tokens).
  std::int64_t prompt_tokens = 0;
  /// max_tokens (or max_completion_tokens) times n, if the body says.
  std::optional<std::int64_t> completion_limit;
};

/// What one input line is: a request, a line to skip (blank), or a mistake.
struct Parsed {
  enum class Kind { request, blank, invalid };
  Kind kind = Kind::blank;
  Request request;    ///< kind == request
  std::string error;  ///< kind == invalid: "line N: <what is wrong>"
};

/// Parses line `number` (1-based) of an input in `format` (not automatic).
Parsed parse_line(const std::string& text, std::size_t number, InputFormat format,
                  const PromptSettings& prompts);

/// The prompt-token estimate, documented in the README: a quarter of the
/// characters of every message's text content, rounded up, plus 4 per message
/// and 3 for the reply's priming (OpenAI's cookbook counts the same way with
/// a tokenizer; a quarter of the characters is its rule of thumb for English).
std::int64_t estimate_prompt_tokens(std::size_t content_chars, std::size_t messages);

/// Streams the input file line by line.
class InputReader {
 public:
  /// Throws std::runtime_error if the file cannot be opened. `format`
  /// automatic: a file whose first non-blank line starts with '{' is batch.
  InputReader(const std::string& path, InputFormat format, PromptSettings prompts);
  /// The next non-blank line, parsed; nullopt at the end.
  std::optional<Parsed> next();
  InputFormat format() const noexcept { return format_; }
  std::size_t line() const noexcept { return line_; }

 private:
  std::ifstream in_;
  InputFormat format_;
  PromptSettings prompts_;
  std::size_t line_ = 0;
  std::string text_;
};

/// A 128-bit digest of a custom_id (two independent 64-bit hashes): the key
/// the done-set and the duplicate check keep instead of the text, so that a
/// million ids take 16 MB. Two ids colliding is a 1-in-2^64 chance per pair
/// for either half: far below any disk's error rate.
struct IdKey {
  std::uint64_t a = 0, b = 0;
  auto operator<=>(const IdKey&) const = default;
};
IdKey key_of(std::string_view custom_id);

/// The input's requests checked before any is sent: every line parsed, no
/// custom_id twice.
struct InputScan {
  std::size_t lines = 0;     ///< non-blank lines
  std::size_t requests = 0;  ///< valid ones
  std::size_t invalid = 0;   ///< malformed lines (reported again when reached)
  InputFormat format = InputFormat::batch;
  /// Keys of the valid requests' custom_ids, sorted.
  std::vector<IdKey> keys;
};

/// Reads the whole input once. Throws DuplicateId for a repeated custom_id.
InputScan scan_input(const std::string& path, InputFormat format, const PromptSettings& prompts);

class DuplicateId : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace concur::batch
