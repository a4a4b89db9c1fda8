// SPDX-License-Identifier: BSL-1.0
// Must not compile: Executor::gather() with no calls (tests/docs/CMakeLists.txt).
#include <concur/concur.hpp>

void empty_gather(concur::Executor& ex) { ex.gather(); }
