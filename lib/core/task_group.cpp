// SPDX-License-Identifier: BSL-1.0
#include "concur/task_group.hpp"

#include <string>

namespace concur::detail {

void check_group_options(const GatherOptions& options) {
  if (options.limit != 0 || options.on_progress) {
    throw UsageError(std::string(messages::kGroupOptions));
  }
}

}  // namespace concur::detail
