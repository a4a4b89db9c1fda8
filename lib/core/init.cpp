// SPDX-License-Identifier: BSL-1.0
#include "concur/init.hpp"

#include "core/launch_hook.hpp"

namespace concur {

namespace {
const char* g_program = "";
bool g_initialized = false;
}  // namespace

void init(int argc, char** argv) {
  if (argc > 0 && argv != nullptr && argv[0] != nullptr) g_program = argv[0];
  g_initialized = true;
  detail::serve_if_launched(argc, argv);  // a launched worker or rank serves here, then exits
}

const char* program_path() noexcept { return g_program; }

bool initialized() noexcept { return g_initialized; }

}  // namespace concur
