#include "concur/init.hpp"

namespace concur {

namespace {
const char* g_program = "";
}

void init(int argc, char** argv) {
  if (argc > 0 && argv != nullptr && argv[0] != nullptr) g_program = argv[0];
}

const char* program_path() noexcept { return g_program; }

}  // namespace concur
