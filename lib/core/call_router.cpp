// SPDX-License-Identifier: BSL-1.0
#include "concur/detail/call_router.hpp"

#include "concur/detail/driver.hpp"

namespace concur::detail {

CallRouter* current_router() noexcept {
  Driver* d = current_driver();
  return d != nullptr ? d->call_router() : nullptr;
}

}  // namespace concur::detail
