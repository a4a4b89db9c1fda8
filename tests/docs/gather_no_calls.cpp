// SPDX-License-Identifier: BSL-1.0
// Must not compile: concur::gather() with no calls (tests/docs/CMakeLists.txt).
#include <concur/concur.hpp>

concur::Task<void> empty_gather() { co_await concur::gather(); }
