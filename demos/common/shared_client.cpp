// SPDX-License-Identifier: BSL-1.0
#include "shared_client.hpp"

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

namespace concur::demo {

const llm::Client& shared_client(const llm::ClientOptions& options) {
  using Key = std::tuple<std::string, std::string, std::string, int, long long, double>;
  static std::mutex mutex;
  static std::map<Key, std::unique_ptr<llm::Client>> clients;
  const Key key{options.base_url,    options.api_key,         options.model,
                options.max_retries, options.timeout.count(), options.requests_per_minute};
  std::lock_guard lock(mutex);
  auto& client = clients[key];
  if (!client) client = std::make_unique<llm::Client>(options);
  return *client;
}

}  // namespace concur::demo
