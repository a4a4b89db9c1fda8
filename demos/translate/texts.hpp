// SPDX-License-Identifier: BSL-1.0
// The texts concur-translate sends: the seed's four sentences, more made up
// from them (--count), or a file's lines (--input).
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace concur::demo {

/// The seed's four English sentences.
const std::vector<std::string>& seed_sentences();

/// `count` distinct sentences: the seed's four first, then variations.
std::vector<std::string> generate_sentences(std::size_t count);

/// One text per non-empty line of `path`. Throws std::runtime_error naming
/// the file when it cannot be read or has no text.
std::vector<std::string> read_lines(const std::string& path);

}  // namespace concur::demo
