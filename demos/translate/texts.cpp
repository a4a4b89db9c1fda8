// SPDX-License-Identifier: BSL-1.0
#include "texts.hpp"

#include <array>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

namespace concur::demo {

const std::vector<std::string>& seed_sentences() {
  static const std::vector<std::string> s{
      "Hello, how are you today?",
      "The weather is beautiful this morning.",
      "I am learning to write concurrent programs.",
      "Could you recommend a good book to read?",
  };
  return s;
}

std::vector<std::string> generate_sentences(std::size_t count) {
  // Variations are subject x verb x object, numbered so every text differs
  // (the fake server's reply and latency are functions of the text).
  static constexpr std::array subjects{"My friend",   "The teacher", "Our team",
                                       "A traveller", "The old man", "My sister"};
  static constexpr std::array verbs{"is reading",   "wants to buy",   "is writing about",
                                    "talked about", "is looking for", "recommended"};
  static constexpr std::array objects{"a book on Kyoto.",        "the new train timetable.",
                                      "a recipe for miso soup.", "the history of the castle.",
                                      "a quiet place to work.",  "the evening news."};
  std::vector<std::string> out;
  out.reserve(count);
  for (std::size_t i = 0; i < count; ++i) {
    if (i < seed_sentences().size()) {
      out.push_back(seed_sentences()[i]);
      continue;
    }
    const std::size_t k = i - seed_sentences().size();
    out.push_back(std::string(subjects[k % subjects.size()]) + " " +
                  verbs[(k / subjects.size()) % verbs.size()] + " " +
                  objects[(k / (subjects.size() * verbs.size())) % objects.size()] + " (" +
                  std::to_string(i + 1) + ")");
  }
  return out;
}

std::vector<std::string> read_lines(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::runtime_error("cannot read --input '" + path + "': " + std::strerror(errno));
  std::vector<std::string> out;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.find_first_not_of(" \t") != std::string::npos) out.push_back(line);
  }
  if (out.empty()) throw std::runtime_error("--input '" + path + "' has no text (one per line)");
  return out;
}

}  // namespace concur::demo
