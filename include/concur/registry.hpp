// Names for task functions: CONCUR_REGISTER(fn).
//
// A registered function is known by its name: stall reports and error
// messages say "say_after" instead of "task", and (with the processes
// executor) a worker process can look the function up by that name.
#pragma once

#include <string_view>

namespace concur::detail {

/// Records `name` for the function at `address`. Returns true (for static init).
bool register_function(std::string_view name, const void* address);
/// The registered name of the function at `address`, or empty.
std::string_view registered_name(const void* address) noexcept;

template <class F>
const void* function_address(F* fn) noexcept {
  // Function pointers are converted to an opaque key only to look up names.
  return reinterpret_cast<const void*>(fn);
}

}  // namespace concur::detail

#define CONCUR_DETAIL_CAT2(a, b) a##b
#define CONCUR_DETAIL_CAT(a, b) CONCUR_DETAIL_CAT2(a, b)

/// Registers task function `fn` under its own name. Use at namespace scope.
#define CONCUR_REGISTER(fn)                                                            \
  [[maybe_unused]] static const bool CONCUR_DETAIL_CAT(concur_registered_, __LINE__) = \
      ::concur::detail::register_function(#fn, ::concur::detail::function_address(&fn))
