// SPDX-License-Identifier: BSL-1.0
// A function's identity for the registry (concur/registry.hpp) without the
// registry itself: what a Call needs to name itself and to be routed.
#pragma once

#include <string_view>

namespace concur::detail {

template <class F>
const void* function_address(F* fn) noexcept {
  // Function pointers are converted to an opaque key only to look up names.
  return reinterpret_cast<const void*>(fn);
}

/// The registered name of the function at `address`, or empty.
std::string_view registered_name(const void* address) noexcept;

}  // namespace concur::detail
